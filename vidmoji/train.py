"""Training the label-window embedders (`ae`, `pca`) on every style's drawn parts and on real faces.

The drawn parts are few (tens per slot), so each is seen many times under augmentation (shift, scale,
rotation, dilation/erosion, noise); real faces come from clips or images given with --faces, parsed by
the same path `vidmoji render` uses. One command, fixed seeds: `vidmoji train --faces ...` reproduces the
shipped weights.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from vidmoji import parts
from vidmoji.avatar.templates import list_styles, load_style, render_label_window
from vidmoji.device import choose_device
from vidmoji.embed import ae as ae_module
from vidmoji.embed import pca as pca_module
from vidmoji.embed.base import mirror_if_left
from vidmoji.errors import VidmojiError
from vidmoji.identity import measure_identity
from vidmoji.pipeline import face_windows, subject_calibration, track_faces
from vidmoji.progress import Progress, log
from vidmoji.video import write_bytes_atomic

GROUPS = tuple(dict.fromkeys(parts.EMBED_GROUP.values()))


@dataclass(frozen=True)
class TrainOptions:
    """embedder: ae, pca or all; faces: clips/images of real faces; epochs of the autoencoder;
    augment: augmented copies of each drawn part; max_face_frames: frames used per clip."""

    embedder: str = "all"
    faces: tuple[Path, ...] = ()
    epochs: int = 30
    seed: int = 0
    augment: int = 160
    max_face_frames: int = 600
    device: str = "auto"
    out_dir: Path | None = None
    groups: tuple[str, ...] = ()      # train only these embed groups, keeping the others from the weights file


def template_windows(templates: Path | None = None) -> dict[str, torch.Tensor]:
    """{group: (P, C, S, S)} label windows of every drawn part of every style, left slots mirrored."""
    out: dict[str, list[torch.Tensor]] = {g: [] for g in GROUPS}
    for name in list_styles(templates):
        for part in load_style(name, templates).parts:
            if part.slot not in parts.EMBED_GROUP:       # glasses and facial hair are chosen by tag
                continue
            w = torch.from_numpy(render_label_window(part, parts.WINDOW_SIZE))
            out[parts.EMBED_GROUP[part.slot]].append(mirror_if_left(part.slot, w))
    return {g: torch.stack(v) for g, v in out.items() if v}


def augment(windows: torch.Tensor, copies: int, generator: torch.Generator) -> torch.Tensor:
    """(P, C, S, S) CPU windows -> (P * copies, C, S, S): random shift (+-2 px), scale (0.9-1.1), rotation
    (+-8 deg), one-pixel dilation or erosion, and pixel noise, drawn from `generator`."""
    x = windows.repeat(copies, 1, 1, 1)
    n = len(x)
    r = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=generator)  # noqa: E731
    angle, scale = r(-8, 8) * math.pi / 180, r(0.9, 1.1)
    shift = torch.stack([r(-2, 2), r(-2, 2)], 1) * 2 / parts.WINDOW_SIZE
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    x = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), align_corners=False)
    morph = torch.randint(0, 3, (n,), generator=generator)
    dil = F.max_pool2d(x, 3, 1, 1)
    ero = -F.max_pool2d(-x, 3, 1, 1)
    x = torch.where((morph == 1)[:, None, None, None], dil, torch.where((morph == 2)[:, None, None, None], ero, x))
    return (x + 0.03 * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def real_face_windows(sources: tuple[Path, ...], max_frames: int, device: torch.device,
                      generator: torch.Generator) -> dict[str, torch.Tensor]:
    """{group: (F, C, S, S)} calibrated windows of real faces in the given clips/images."""
    out: dict[str, list[torch.Tensor]] = {g: [] for g in GROUPS}
    for source in sources:
        log(f"parsing faces in {source}")
        with Progress("faces", 0) as progress:
            track = track_faces(Path(source), device, progress=progress)
        mesh = track.mesh[track.has_face]
        if not len(mesh):
            log(f"  no face in {source}; skipped")
            continue
        calib = subject_calibration(track)
        keep = torch.randperm(len(mesh), generator=generator)[:max_frames].sort().values.numpy()
        windows = face_windows(mesh[keep], calib, device)
        for slot, w in windows.items():
            out[parts.EMBED_GROUP[slot]].append(mirror_if_left(slot, w.cpu()))
        hair = measure_identity(track.heads, device).hair_window       # one hair window per subject
        if hair is not None:
            out["hair"].append(torch.from_numpy(hair)[None])
    return {g: torch.cat(v) if v else torch.zeros(0) for g, v in out.items()}


# Reconstruction alone gives a code whose cosine similarities need not follow the windows' own: matching
# would then pick parts that reconstruct alike, not parts that look alike. The metric term asks the centred
# codes of a batch to keep the cosine similarities of the centred windows (what a PCA keeps by
# construction), and reconstruction keeps them informative.
METRIC_WEIGHT = 1.0


def _metric_loss(code: torch.Tensor, centred: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the pairwise cosine similarities of the batch's centred codes
    (B, D) and of its centred windows (B, C, S, S)."""
    c = F.normalize(code - code.mean(0, keepdim=True), dim=1)
    x = F.normalize(centred.flatten(1), dim=1)
    return ((c @ c.T - x @ x.T) ** 2).mean()


def train_autoencoder(data: torch.Tensor, epochs: int, seed: int, device: torch.device) -> dict:
    """Train one group's autoencoder on (B, C, S, S) windows; returns {"model": state_dict, "centre": (D,)}."""
    torch.manual_seed(seed)
    model = ae_module.WindowAutoencoder(data.shape[1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    data = data.to(device)
    mean = data.mean(0, keepdim=True)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(data), generator=g).split(256):
            batch = data[idx.to(device)]
            code, recon = model(batch)
            loss = F.binary_cross_entropy_with_logits(recon, batch) + METRIC_WEIGHT * _metric_loss(code, batch - mean)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    with torch.inference_mode():
        codes = torch.cat([model.encoder(data[i:i + 1024]) for i in range(0, len(data), 1024)])
        final = float(F.binary_cross_entropy_with_logits(model(data[:2048])[1], data[:2048]))
    log(f"  reconstruction loss {final:.4f}")
    return {"model": {k: v.cpu() for k, v in model.state_dict().items()}, "centre": codes.mean(0).cpu()}


def train_embedders(options: TrainOptions) -> Iterator[str]:
    """Train the requested embedders; yields a line per weights file written."""
    if options.embedder not in ("ae", "pca", "all"):
        raise VidmojiError(f"vidmoji trains ae and pca (or all), not {options.embedder!r}")
    device = choose_device(options.device)
    log(f"device: {device}")
    g = torch.Generator().manual_seed(options.seed)
    drawn = template_windows()
    faces = real_face_windows(options.faces, options.max_face_frames, device, g)
    unknown = set(options.groups) - set(GROUPS)
    if unknown:
        raise VidmojiError(f"unknown embed group(s) {', '.join(sorted(unknown))}: choose from {', '.join(GROUPS)}")
    groups = tuple(g for g in GROUPS if g in drawn and (not options.groups or g in options.groups))
    data = {}
    for group in groups:
        parts_aug = augment(drawn[group], options.augment, g)
        real = faces[group] if faces[group].numel() else torch.zeros((0, *parts_aug.shape[1:]))
        data[group] = torch.cat([drawn[group], parts_aug, real])
        log(f"{group}: {len(drawn[group])} drawn parts x {options.augment} augmentations, {len(real)} real faces")
    out_dir = Path(options.out_dir or Path(ae_module.__file__).parent / "weights")
    out_dir.mkdir(parents=True, exist_ok=True)
    if options.embedder in ("pca", "all"):
        path = out_dir / pca_module.WEIGHTS.name
        state = _kept(path, groups)
        state.update({group: pca_module.fit_pca(data[group]) for group in groups})
        _save(state, path)
        yield f"wrote {path}"
    if options.embedder in ("ae", "all"):
        path = out_dir / ae_module.WEIGHTS.name
        state = _kept(path, groups)
        for group in groups:
            log(f"training the {group} autoencoder on {len(data[group])} windows")
            state[group] = train_autoencoder(data[group], options.epochs, options.seed, device)
        _save(state, path)
        yield f"wrote {path}"


def _kept(path: Path, trained: tuple[str, ...]) -> dict:
    """The groups of an existing weights file that are not being trained (all of them kept as they are)."""
    if not path.is_file():
        return {}
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {g: v for g, v in state.items() if g not in trained}


def _save(state: dict, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes_atomic(path, buf.getvalue())

