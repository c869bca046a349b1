"""Person masks: which pixels of a photo show the person (head, hair, neck, body) rather than the
background, for the silhouette term of single-view fits (:mod:`mfnet.fit.silhouette`).

MediaPipe's selfie segmentation (the legacy ``mediapipe.solutions`` API; its general 256 px model
ships in the mediapipe 0.10.21 wheel, so it works offline like the face mesh). Measured on the
rendered real scan (``lee-1-y60`` / ``lee-1-y75`` of ``mfnet bench --real``): the profile outline
(forehead, nose, lips, chin) follows the head to a pixel on a plain background; on the cluttered
one a coloured shape touching the nose tip is taken as person. The graph is made once and reused;
calls are serialised with a lock (MediaPipe graphs are not thread-safe).
"""
from __future__ import annotations

import importlib.util
import threading

import numpy as np
import torch

from .errors import DetectorUnavailableError

_LOCK = threading.Lock()
_GRAPH = None


def available() -> bool:
    """Whether person masks can be made (mediapipe installed)."""
    return importlib.util.find_spec("mediapipe") is not None


def _graph():
    global _GRAPH
    if _GRAPH is None:
        try:
            from mediapipe.python.solutions.selfie_segmentation import SelfieSegmentation
        except ImportError as e:  # pragma: no cover - mediapipe is a dependency
            raise DetectorUnavailableError(f"person masks need mediapipe ({e}); see scripts/setup.sh") from e
        _GRAPH = SelfieSegmentation(model_selection=0)
    return _GRAPH


def person_masks(images: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] (e.g. the fit's crops, ``Views.images``) -> (N, H, W) bool, True
    where the person is (segmentation confidence above ``threshold``)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) images, got {tuple(images.shape)}")
    rgb = (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    with _LOCK:
        graph = _graph()
        out = [graph.process(np.ascontiguousarray(im)).segmentation_mask > threshold for im in rgb]
    return torch.from_numpy(np.stack(out)).to(images.device)
