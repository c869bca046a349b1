"""mfnet: multi-view 3D face reconstruction with FLAME-format head models, in plain PyTorch.

``mfnet.reconstruct(images, ...)`` is the one-call API (see :mod:`mfnet.pipeline`).
"""
from ._version import __version__

__all__ = ["reconstruct", "__version__"]


def __getattr__(name):  # keep `import mfnet` light: torch etc. load on first use
    if name == "reconstruct":
        from .export import reconstruction  # noqa: F401  (what Reconstruction.save() writes with)
        from .pipeline import reconstruct

        return reconstruct
    raise AttributeError(f"module 'mfnet' has no attribute {name!r}")
