"""The learned path: the MFNet multi-view regressor, weight initialisation, checkpoints, inference.

>>> net = MFNet(model.n_shape, model.n_expr, backbone="resnet50", fusion="concat", n_views=3)
>>> head, views_params = predict(net, views)             # HeadParams, ViewParams
>>> head, vp = init_from_network("run/checkpoints/last.pt", views, model)
"""
from .checkpoint import (CheckpointError, check_head_model, init_from_network, load_checkpoint, predict,
                         read_checkpoint, save_checkpoint)
from .init import InitReport, InitWeightsError, load_init
from .model import BACKBONES, FUSIONS, MFNet, NetConfigError, NetOutput, build_net

__all__ = ["BACKBONES", "FUSIONS", "CheckpointError", "InitReport", "InitWeightsError", "MFNet", "NetConfigError",
           "NetOutput", "build_net", "check_head_model", "init_from_network", "load_checkpoint", "load_init",
           "predict", "read_checkpoint", "save_checkpoint"]
