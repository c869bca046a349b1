"""Head models in the FLAME layout: file format, LBS layer, loaders and registry."""
from .data import HeadModelData, HeadModelError
from .model import HeadModel, HeadOutput
from .registry import load_head_model, resolve_model_path

__all__ = ["HeadModel", "HeadModelData", "HeadModelError", "HeadOutput", "load_head_model", "resolve_model_path"]
