"""Dense optical flow between a photo and a rendering (OpenCV DIS by default, torchvision RAFT optional)."""
from .dis import dis_flow

__all__ = ["dis_flow"]
