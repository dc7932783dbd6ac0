"""Test helper (not a vidmoji feature): run many `vidmoji` command lines in one process, one after another.

A subprocess per command line costs seconds of imports (torch); this runs the real CLI entry point
in-process for each case instead, with its own captured stdout and stderr (Python's and the native
file descriptor 2, where FFmpeg would write) and its own time limit, and appends one JSON line per case
to the results file as soon as the case ends (so a hang or a crash still leaves the earlier results).

    python tests/_drive.py CASES.json RESULTS.jsonl

CASES.json: a list of {"id": str, "argv": [str, ...], "timeout": seconds}.
Each result: {"id", "status" ("done" or "timeout"), "exit_code", "stdout", "stderr", "traceback"
(an exception that escaped the CLI, formatted; else null), "seconds"}.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
import traceback


class CaseTimeout(BaseException):
    """The case ran past its time limit (a BaseException so that no `except Exception` swallows it)."""


def _on_alarm(signum, frame):
    raise CaseTimeout()


def run_case(runner, app, case: dict) -> dict:
    native = tempfile.TemporaryFile()
    saved = os.dup(2)
    os.dup2(native.fileno(), 2)
    start = time.monotonic()
    result, status = None, "done"
    signal.alarm(max(1, int(case.get("timeout", 60))))
    try:
        result = runner.invoke(app, case["argv"], catch_exceptions=True, prog_name="vidmoji")
    except CaseTimeout:
        status = "timeout"
    finally:
        signal.alarm(0)
        os.dup2(saved, 2)
        os.close(saved)
    native.seek(0)
    native_err = native.read().decode("utf-8", "replace")
    native.close()
    tb = None
    if result is not None and result.exception is not None and not isinstance(result.exception, SystemExit):
        tb = "".join(traceback.format_exception(*result.exc_info))
    return {
        "id": case["id"],
        "status": status,
        "exit_code": None if result is None else result.exit_code,
        "stdout": "" if result is None else result.stdout,
        "stderr": ("" if result is None else result.stderr) + native_err,
        "traceback": tb,
        "seconds": round(time.monotonic() - start, 2),
    }


def main(cases_path: str, results_path: str) -> None:
    from typer.testing import CliRunner

    from vidmoji.cli import app

    cases = json.loads(open(cases_path, encoding="utf-8").read())
    signal.signal(signal.SIGALRM, _on_alarm)
    runner = CliRunner()
    with open(results_path, "a", encoding="utf-8") as out:
        for case in cases:
            out.write(json.dumps(run_case(runner, app, case)) + "\n")
            out.flush()


if __name__ == "__main__":
    main(*sys.argv[1:3])
