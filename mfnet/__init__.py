"""mfnet: multi-view 3D face reconstruction with FLAME-format head models, in plain PyTorch."""
__version__ = "0.1.0"
