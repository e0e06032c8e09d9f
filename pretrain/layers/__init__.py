"""Layer kinds, one file each; importing this package registers them all."""
from .base import (COMMON_OPTIONS, Layer, LayerSpec, build_layer, describe_layers,
                   get_layer_class, list_layers, register_layer)
from . import ae, grbm, rbm  # noqa: F401  (registration side effect)

__all__ = ["COMMON_OPTIONS", "Layer", "LayerSpec", "build_layer", "describe_layers",
           "get_layer_class", "list_layers", "register_layer"]
