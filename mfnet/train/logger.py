"""Training logs: TensorBoard when ``torch.utils.tensorboard`` imports, else CSV scalars + PNG images.

Both write under ``<out_dir>/logs``: the fallback appends ``scalars.csv`` (step, tag, value) and
saves image grids as ``images/<tag>_<step>.png``. :func:`landmark_grid` draws the training views
with detected (green) and predicted (red) landmarks over a shaded render of the prediction.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


class CSVLogger:
    """Scalars to ``scalars.csv``, images to ``images/*.png`` (no TensorBoard needed)."""

    backend = "csv"

    def __init__(self, log_dir: str | Path):
        self.dir = Path(log_dir)
        (self.dir / "images").mkdir(parents=True, exist_ok=True)
        new = not (self.dir / "scalars.csv").exists()
        self._fh = open(self.dir / "scalars.csv", "a", newline="")
        self._csv = csv.writer(self._fh)
        if new:
            self._csv.writerow(["step", "tag", "value"])

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self._csv.writerow([int(step), tag, f"{float(value):.6g}"])

    def add_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """``image`` (H, W, 3) uint8."""
        from ..export.preview import save_png

        save_png(self.dir / "images" / f"{tag.replace('/', '_')}_{int(step):07d}.png", image)

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class TensorBoardLogger:
    backend = "tensorboard"

    def __init__(self, log_dir: str | Path):
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Path(log_dir)
        self._w = SummaryWriter(str(log_dir))

    def add_scalar(self, tag, value, step):
        self._w.add_scalar(tag, float(value), int(step))

    def add_image(self, tag, image, step):
        self._w.add_image(tag, np.asarray(image), int(step), dataformats="HWC")

    def flush(self):
        self._w.flush()

    def close(self):
        self._w.close()


def make_logger(log_dir: str | Path, backend: str = "auto"):
    """TensorBoard if available (``backend='auto'``), else the CSV/PNG fallback."""
    if backend in ("auto", "tensorboard"):
        try:
            return TensorBoardLogger(log_dir)
        except ImportError:
            if backend == "tensorboard":
                raise
            log.info("tensorboard is not installed: logging scalars to CSV and images to PNG in %s", log_dir)
    return CSVLogger(log_dir)


def _draw_points(img: np.ndarray, pts: np.ndarray, color) -> None:
    import cv2

    r = max(1, img.shape[0] // 128)
    for x, y in pts:
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(img, (int(x), int(y)), r, color, -1, lineType=cv2.LINE_AA)


@torch.no_grad()
def landmark_grid(images: torch.Tensor, target: torch.Tensor, pred: torch.Tensor, render: torch.Tensor | None = None,
                  max_subjects: int = 4) -> np.ndarray:
    """Rows = subjects, columns = views. images (B, N, 3, S, S); target / pred (B, N, 68, 2) pixels;
    render (B, N, 3, S, S) optional, blended half over the photo. Returns (H, W, 3) uint8."""
    B = min(images.shape[0], max_subjects)
    rows = []
    for b in range(B):
        cells = []
        for v in range(images.shape[1]):
            im = images[b, v].float()
            if render is not None:
                im = 0.5 * im + 0.5 * render[b, v].float()
            cell = np.ascontiguousarray((im.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8))
            _draw_points(cell, target[b, v].cpu().numpy(), (0, 255, 0))
            _draw_points(cell, pred[b, v].float().cpu().numpy(), (255, 0, 0))
            cells.append(cell)
        rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(rows, axis=0)
