"""The saved artifact: a greedily pretrained stack of layers with its preprocessing.

``OUT/stack.pt`` is a plain dict (``torch.load(..., weights_only=True)`` loads
it)::

    {"format": "layerwise.stack", "version": 2, "checksum": "<sha256>",
     "layers": [{"kind", "n_visible", "n_hidden", "options", "state": {name: tensor}}, ...],
     "preprocessing": {"mode", "input_shape", "lo", "hi", ["mean", "std"]},
     "info": {"data", "split_seed", "seed", "history", "versions", ...}}

``OUT/stack.json`` holds the same minus the tensors, for people (:func:`readable`). Loading
checks the checksum (see :mod:`pretrain.core.io`); a version-1 file (layerwise
0.1.0, no checksum) loads with a warning: ``load_stack(DIR).save(DIR)`` adds one.

``stack.pt`` is what loads; the checksum covers it, not ``stack.json``. So that
an edited copy cannot quietly disagree with the weights (a user who changes
``n_hidden`` or ``data`` there and expects it to count), loading compares the
two on every field both carry and refuses a disagreement in one line naming
the field (:func:`check_readable_copy`). A missing ``stack.json`` is no
mistake: ``stack.pt`` loads alone, and saving the stack writes the copy again.
"""
import json
import math
import platform
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
from torch import nn

from ..core.batches import map_batches, rows_within
from ..core.errors import LayerwiseError
from ..core.io import VERSION, artifact_file, load_artifact, load_state, rebuilding, save_artifact, save_json
from ..layers import Layer, build_layer
from ..data.preprocess import Preprocessing


def versions() -> Dict[str, str]:
    """Library versions recorded with every artifact."""
    from ..core import __version__
    return {"layerwise": __version__, "torch": str(torch.__version__), "numpy": np.__version__,
            "python": platform.python_version()}


class Stack:
    """Pretrained layers (bottom first) plus the preprocessing of the data they were trained on."""

    def __init__(self, layers: List[Layer], preprocessing: Preprocessing, info: Dict[str, Any]):
        self.layers = layers
        self.preprocessing = preprocessing
        self.info = info

    def __repr__(self) -> str:
        sizes = [self.preprocessing.n_features] + [layer.n_hidden for layer in self.layers]
        kinds = ", ".join(layer.kind for layer in self.layers)
        return f"Stack({'-'.join(map(str, sizes))}; {kinds})"

    @property
    def n_features(self) -> int:
        return self.preprocessing.n_features

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_hidden

    def preprocess(self, raw) -> torch.Tensor:
        """The saved preprocessing applied to raw data ``[N, ...]``."""
        return self.preprocessing(raw)

    def layer_modules(self) -> List[nn.Sequential]:
        """Each layer's plain modules with copies of its weights, bottom first; a dense layer above
        convolutional ones starts with ``nn.Flatten``: where the feature maps become vectors."""
        groups, maps = [], self.preprocessing.layout == "image"
        for layer in self.layers:
            modules = layer.to_modules()
            if maps and not layer.convolutional:
                modules.insert(0, nn.Flatten())
            groups.append(modules)
            maps = layer.convolutional
        return groups

    def encoder(self) -> nn.Sequential:
        """A plain ``nn.Sequential`` of :meth:`layer_modules` (``Linear`` or ``Conv2d`` + activation [+ pool]),
        ending in ``nn.Flatten`` when the top layer passes feature maps."""
        top_maps = self.layers[-1].convolutional
        return nn.Sequential(*self.layer_modules(), *([nn.Flatten()] if top_maps else []))

    @property
    def row_bytes(self) -> int:
        """Bytes of the widest tensor one input row makes in the stack (its widest layer's)."""
        return max(layer.row_bytes for layer in self.layers)

    def transform(self, raw, batch_size: Optional[int] = None):
        """Top-layer codes ``encoder()(preprocess(raw))``: a numpy array for numpy input, a tensor for a tensor;
        in chunks of ``batch_size`` rows (None: :func:`pretrain.core.batches.rows_within` the widest layer)."""
        encoder = self.encoder().eval()
        as_tensor = isinstance(raw, torch.Tensor)
        x = self.preprocess(raw.cpu().numpy() if as_tensor else raw)
        batch_size = batch_size or rows_within(self.row_bytes)
        codes = map_batches(encoder, x, batch_size) if len(x) else x.new_zeros(0, self.n_outputs)
        return codes if as_tensor else codes.numpy()

    def to_dict(self) -> Dict[str, Any]:
        """The artifact's content (:func:`pretrain.core.io.save_artifact` adds format, version and checksum)."""
        layers = [{**layer.config(), "state": {k: v.detach().cpu().clone() for k, v in layer.state_dict().items()}}
                  for layer in self.layers]
        return {"layers": layers, "preprocessing": self.preprocessing.to_dict(), "info": self.info}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Stack":
        """Rebuild from :meth:`to_dict` output; a ``KeyError``/``ValueError`` when it does not fit together."""
        layers = []
        for index, entry in enumerate(d["layers"]):
            layer = build_layer(entry)
            load_state(layer, entry["state"], f"layer {index + 1} ({layer.kind})")
            layers.append(layer.eval())
        preprocessing = Preprocessing.from_dict(d["preprocessing"])
        shapes = [preprocessing.output_shape] + [layer.output_shape for layer in layers]
        for index, layer in enumerate(layers):
            fits = (layer.input_shape == shapes[index] if layer.convolutional
                    else layer.n_visible == math.prod(shapes[index]))
            if not fits:
                raise ValueError(f"layer {index + 1} takes inputs shaped {list(layer.input_shape)} "
                                 f"but receives {list(shapes[index])}")
        if preprocessing.mode == "standardize":
            expected = (preprocessing.output_shape[0],) if preprocessing.layout == "image" else (preprocessing.n_features,)
            if not preprocessing.mean.shape == preprocessing.std.shape == expected:
                raise ValueError(f"its preprocessing mean and std are not {expected[0]} values each")
        return cls(layers, preprocessing, d["info"])

    def describe(self) -> Dict[str, Any]:
        """The artifact minus tensors: what ``stack.json`` holds (:func:`readable`)."""
        return readable({"format": "layerwise.stack", "version": VERSION, **self.to_dict()})

    def save(self, out_dir) -> Path:
        """Write ``stack.pt`` and ``stack.json`` into ``out_dir`` atomically; return the ``.pt`` path."""
        out = Path(out_dir)
        save_artifact(self.to_dict(), out / "stack.pt", "stack")
        save_json(self.describe(), out / "stack.json")
        return out / "stack.pt"


def readable(artifact: Dict[str, Any]) -> Dict[str, Any]:
    """What ``stack.json`` holds of a stack artifact (:meth:`Stack.to_dict` with its format and version): all but
    the tensors (each layer's state, a standardisation's mean and std) and the checksum, the info at the top."""
    layers = [{key: value for key, value in layer.items() if key != "state"} for layer in artifact["layers"]]
    preprocessing = {key: value for key, value in artifact["preprocessing"].items()
                     if not isinstance(value, torch.Tensor)}
    return {"format": artifact["format"], "version": artifact["version"], **artifact["info"], "layers": layers,
            "preprocessing": preprocessing}


def check_readable_copy(file: Path, saved: Dict[str, Any]) -> None:
    """Refuse, in one line naming the field, a ``stack.json`` beside ``file`` that disagrees with the artifact
    ``saved`` (read from ``file``) on a field both carry; none there passes (see the module docstring)."""
    copy = file.with_suffix(".json")
    if not copy.exists():
        return
    remedy = (f"{copy.name} is a copy for reading and {file.name} is what loads: undo the edit, or delete "
              f"{copy.name} ({file.name} loads alone; pretrain.load_stack(DIR).save(DIR) writes the copy again)")
    try:
        written = json.loads(copy.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise LayerwiseError(f"{copy} cannot be read ({error}): {remedy}") from None
    found = first_difference(written, json.loads(json.dumps(readable(saved), default=str)))
    if found is not None:
        field, there, here = found
        raise LayerwiseError(f"{copy} disagrees with {file.name} on {field} ({there} there, {here} in "
                             f"{file.name}): {remedy}")


def first_difference(written: Any, loaded: Any, field: str = "") -> Optional[tuple]:
    """``(field, written value, loaded value)`` of the first field both carry whose values differ, else None.

    Keys of one side only are skipped (older files lack newer keys); values are compared as JSON text, so
    that NaN equals NaN; lists of other lengths differ by their lengths.
    """
    if isinstance(written, dict) and isinstance(loaded, dict):
        for key in (key for key in written if key in loaded):
            found = first_difference(written[key], loaded[key], f"{field}.{key}" if field else key)
            if found is not None:
                return found
        return None
    if isinstance(written, list) and isinstance(loaded, list):
        if len(written) != len(loaded):
            return field, f"{len(written)} entries", f"{len(loaded)}"
        for index, (a, b) in enumerate(zip(written, loaded)):
            found = first_difference(a, b, f"{field}[{index}]")
            if found is not None:
                return found
        return None
    there, here = json.dumps(written), json.dumps(loaded)
    return None if there == here else (field, there, here)


def stack_path(path: Union[str, Path]) -> Path:
    """``DIR`` or ``DIR/stack.pt`` -> the ``stack.pt`` file, with a one-line error when missing."""
    return artifact_file(path, "stack.pt", f"no pretrained stack at {path}: run `pretrain DATA -l ... -o {path}` first")


def load_stack(path: Union[str, Path]) -> Stack:
    """Load a stack saved by ``pretrain`` (a folder or its ``stack.pt``); a broken file is one line."""
    file = stack_path(path)
    remedy = (f"run `pretrain DATA -l ... -o {file.parent} --overwrite` again, "
              "or restore the file from a backup")
    saved = load_artifact(file, "stack", remedy)
    with rebuilding(file, "stack", remedy):
        stack = Stack.from_dict(saved)
    check_readable_copy(file, saved)
    return stack


def record_in_stack(path: Union[str, Path], key: str, value: Any) -> Path:
    """Set ``info[key] = value`` in a saved stack's record, in ``stack.pt`` and ``stack.json`` alike.

    Under the folder's :class:`~pretrain.core.lock.OutputLock`: no run writes there meanwhile.
    """
    from ..core.lock import OutputLock
    folder = stack_path(path).parent
    with OutputLock(folder):
        stack = load_stack(folder)
        stack.info[key] = value
        return stack.save(folder)
