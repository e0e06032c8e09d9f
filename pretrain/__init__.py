"""layerwise's pretraining half: greedy layer-wise RBMs and autoencoders on unlabeled data.

Python API::

    import pretrain
    stack = pretrain.pretrain_stack("digits", ["rbm:256", "rbm:128"], out="runs/dbn")
    stack = pretrain.load_stack("runs/dbn")
    codes = stack.transform(raw_images)        # encoder()(preprocess(raw))

Names are imported lazily so that ``pretrain --help`` does not wait for torch.
"""
import importlib

from .core import __version__

_EXPORTS = {
    "pretrain_stack": "training.greedy", "load_stack": "training.stack", "Stack": "training.stack",
    "load_data": "data", "Dataset": "data", "LayerwiseError": "core.errors",
    "LayerSpec": "layers", "list_layers": "layers", "register_layer": "layers", "Layer": "layers",
    "Preprocessing": "data.preprocess",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'pretrain' has no attribute {name!r}")
