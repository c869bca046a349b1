"""Loss weights shared by the fit (:mod:`mfnet.fit.config`) and the network's training
(:mod:`mfnet.train.config`): one name per term, one way to switch a term off (weight 0)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LossWeights:
    """Weights of MFNet's eq. 11 and of the terms beyond the paper.

    The defaults are the fit's measured values; :meth:`paper` gives the paper's λ1..λ5 (what the
    network trains with). A weight of 0 removes its term (and a stage that exists only for it)."""

    multiop: float = 1.0  # λ1, eq. 6: multi-view optical-flow consistency
    landmarks: float = 1.0  # λ2, eq. 7: 68-point reprojection
    eye: float = 1.0  # λ3, eq. 8: eyelid closure
    lip: float = 0.5  # λ4, eq. 9: lip closure
    # λ5, eq. 10. The paper's 1e-4 is for its network; for the fit, measured on synthetic ground truth
    # with detected landmarks (benchmarks/bench_reconstruct.py), 1e-2 is better on every view set.
    reg_shape: float = 1e-2
    reg_expression: float = 1e-2
    # The identity prior of a single-view fit. Measured on 7 real single views (Lee Perry-Smith renders
    # at 0/30/60/75° and pitched, one real James photo): NoW median 1.11 -> 1.06 mm at 3e-3 vs 1e-2.
    reg_shape_single_view: float = 3e-3
    # MediaPipe 478-point mesh term (needs `mfnet models calibrate --dense`): off, no measured gain.
    dense: float = 0.0
    photo: float = 1.0  # multi-view photometric consistency (beyond the paper; the fit's last stage)
    # single-view fits: the face's outline onto the photo's person outline (beyond the paper; fit only).
    # Measured on 7 real single views (NoW median / mean head's): 0.07, 0.1, 0.15, 0.2, 0.3 -> mean 0.872,
    # 0.863, 0.854, 0.859, 0.858; worst 0.977, 0.954, 0.937, 0.944, 0.940 (docs/benchmarks.md)
    silhouette: float = 0.15
    reg_texture: float = 1e-4  # the network's texture code (training only)

    @classmethod
    def paper(cls) -> "LossWeights":
        """The paper's eq. 11: λ1..λ5 = 1, 1, 1, 0.5, 1e-4."""
        return cls(reg_shape=1e-4, reg_expression=1e-4)
