"""Self-supervised multi-view training of MFNet: config (YAML), losses (eq. 11), loop (DDP, AMP,
exact resume), logging and held-out synthetic evaluation."""
from .config import ConfigError, TrainConfig, config_from_dict, dump_config, load_config
from .evaluate import evaluate_synthetic
from .losses import TrainLoss
from .trainer import TrainError, build_dataset, camera_prior, train

__all__ = ["ConfigError", "TrainConfig", "TrainError", "TrainLoss", "build_dataset", "camera_prior",
           "config_from_dict", "dump_config", "evaluate_synthetic", "load_config", "train"]
