"""Grasp networks: registry/factory, base class and loss.

Every network maps ``N x C x H x W`` (C = 1 depth, 3 RGB, 4 depth+RGB) to ``N x 4 x H x W``
maps at the input size, channels quality, cos 2θ, sin 2θ, width (raw/linear outputs).

>>> from models import get_network, list_networks
>>> net = get_network("pspnet", input_channels=4, backbone="resnet18")
>>> rebuilt = get_network(net.network_name, **net.network_kwargs)  # e.g. from a checkpoint

Registered: ``ggcnn`` (RSS 2018), ``ggcnn2`` (IJRR 2019), ``pspnet`` (dilated ResNet + pyramid
pooling). ``grasp_map_loss`` (sum of per-map MSEs) is shared with distillation/MixMatch code;
``MapEnsemble`` averages the maps of several trained networks.
"""

from . import ggcnn, ggcnn2, pspnet  # noqa: F401 -- imported to register the networks
from .base import GRASP_MAP_NAMES, MAP_LOSSES, GraspNet, count_parameters, grasp_map_loss
from .ensemble import MapEnsemble
from .ggcnn import GGCNN
from .ggcnn2 import GGCNN2
from .pspnet import PSPNet
from .registry import get_network, list_networks, register_network

__all__ = [
    "GGCNN",
    "GGCNN2",
    "GRASP_MAP_NAMES",
    "MAP_LOSSES",
    "GraspNet",
    "MapEnsemble",
    "PSPNet",
    "count_parameters",
    "get_network",
    "grasp_map_loss",
    "list_networks",
    "register_network",
]
