"""Layer kinds, one file each; importing this package registers them all."""
from .base import Layer
from .registry import build_layer, get_layer_class, list_layers, register_layer
from .options import Option, options_table, validate_options
from .spec import TRAINER_OPTIONS, LayerSpec, describe_layers
from . import ae, cae, crbm, grbm, kmeans, patch, rbm, sampled  # noqa: F401  (registration side effect)

__all__ = ["TRAINER_OPTIONS", "Layer", "LayerSpec", "Option", "build_layer", "describe_layers",
           "get_layer_class", "list_layers", "options_table", "register_layer", "validate_options"]
