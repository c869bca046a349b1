"""OpenCV DIS optical flow (no weights needed): the default flow backend.

DIS is not differentiable; mfnet uses its flow as *correspondences* and puts the gradient
through the projected geometry instead (see :mod:`mfnet.losses.flow`).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def _gray(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W) uint8."""
    g = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]).clamp(0, 1)
    return (g.detach().cpu().numpy() * 255 + 0.5).astype(np.uint8)


def dis_flow(source: torch.Tensor, target: torch.Tensor, preset: str = "medium") -> torch.Tensor:
    """Flow from ``source (N, 3, H, W)`` to ``target (N, 3, H, W)``: (N, H, W, 2) pixels, so that
    the content at pixel p of ``source`` is found at ``p + flow[p]`` in ``target``."""
    if preset not in _PRESETS:
        raise ValueError(f"unknown DIS preset {preset!r}; choose from {', '.join(_PRESETS)}")
    dis = cv2.DISOpticalFlow_create(_PRESETS[preset])
    flows = [dis.calc(_gray(s), _gray(t), None) for s, t in zip(source, target)]  # one call per image pair
    return torch.from_numpy(np.stack(flows)).to(device=source.device, dtype=source.dtype)
