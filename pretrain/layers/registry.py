"""The registry of layer kinds, in the manner of torchvision's model registry.

Each kind's file registers its class with :func:`register_layer` under its ``kind`` name (importing
:mod:`pretrain.layers` imports them all); everything that names a kind (``-l rbm:500``, a saved
stack's configs, ``--list-layers``, the contract test) looks it up here.
"""
from typing import Any, Dict, List

from ..core.errors import LayerwiseError

_REGISTRY: Dict[str, type] = {}


def register_layer(cls):
    """Class decorator adding a layer kind to the registry under ``cls.kind``."""
    if cls.kind in _REGISTRY:
        raise ValueError(f"layer kind {cls.kind!r} is already registered")
    _REGISTRY[cls.kind] = cls
    return cls


def list_layers() -> List[str]:
    """The registered layer kinds, sorted."""
    return sorted(_REGISTRY)


def get_layer_class(kind: str) -> type:
    """The class registered as ``kind``; a one-line error naming the valid kinds otherwise."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise LayerwiseError(
            f"unknown layer kind {kind!r}: use one of {', '.join(list_layers())} "
            "(see pretrain --list-layers)") from None


def build_layer(config: Dict[str, Any]):
    """Rebuild a layer from :meth:`pretrain.layers.base.Layer.config` output (before its state is loaded)."""
    return get_layer_class(config["kind"]).from_config(config)
