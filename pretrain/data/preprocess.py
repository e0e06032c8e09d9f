"""Preprocessing fitted on the pretraining data and saved beside the weights.

Two modes, chosen by the first layer's ``input_range``:

* ``unit``: ``x -> clip((x - lo) / (hi - lo), 0, 1)`` with global ``lo, hi``
  (0 and 255 for 8-bit images, else the data's range), for Bernoulli units and
  cross-entropy autoencoders;
* ``standardize``: per-feature ``(x - mean) / std`` (constant features keep
  std 1), which Gaussian RBMs need to train stably.

Two layouts, chosen by the first layer: ``flat`` rows ``[N, D]`` for dense
layers (images flattened), ``image`` maps ``[N, C, H, W]`` for convolutional
ones (an image's channels stay channels; ``standardize`` is then per channel,
so every position is scaled alike). The raw shape (H, W, C) is kept so
filters can be drawn and data of another shape is refused with a message.
"""
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from ..core.batches import map_batches, rows_file
from ..core.errors import LayerwiseError

MODES = {"unit": "unit", "real": "standardize"}


class Preprocessing:
    """Maps raw arrays ``[N, ...]`` to float32 tensors ``[N, D]``."""

    def __init__(self, mode: str, input_shape: Tuple[int, ...], lo: float = 0.0, hi: float = 1.0,
                 mean: Optional[torch.Tensor] = None, std: Optional[torch.Tensor] = None, layout: str = "flat"):
        self.mode = mode
        self.input_shape = tuple(int(d) for d in input_shape)
        self.lo, self.hi = float(lo), float(hi)
        self.mean, self.std = mean, std
        self.layout = layout

    @classmethod
    def fit(cls, raw: np.ndarray, input_range: str, layout: str = "flat") -> "Preprocessing":
        """Fit to the pretraining inputs for a first layer expecting ``input_range`` ("unit" or "real")
        in ``layout`` ("flat" or "image")."""
        raw = np.asarray(raw)
        shape = raw.shape[1:]
        if layout == "image" and len(shape) not in (2, 3):
            raise LayerwiseError(f"convolutional layers need images [N, H, W] or [N, H, W, C]; this data is "
                                 f"shaped [N, {', '.join(map(str, shape))}]: use dense layers (rbm, grbm, ae)")
        if input_range == "unit":
            lo, hi = (0.0, 255.0) if raw.dtype == np.uint8 else (float(raw.min()), float(raw.max()))
            return cls("unit", shape, lo=lo, hi=hi if hi > lo else lo + 1.0, layout=layout)
        channels = shape[2] if len(shape) == 3 else 1
        # one column per feature, or per channel (every pixel a row) in the image layout
        values = raw.reshape(-1, channels) if layout == "image" else raw.reshape(len(raw), -1)
        values = torch.from_numpy(values.astype(np.float64))
        std = values.std(0)
        std[std < 1e-8] = 1.0
        return cls("standardize", shape, mean=values.mean(0).float(), std=std.float(), layout=layout)

    @property
    def n_features(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def output_shape(self) -> Tuple[int, ...]:
        """The shape of one preprocessed row: ``(D,)``, or ``(C, H, W)`` in the image layout."""
        if self.layout == "flat":
            return (self.n_features,)
        height, width, channels = self.image_shape
        return (channels, height, width)

    @property
    def image_shape(self) -> Optional[Tuple[int, int, int]]:
        """(H, W, C) for image inputs, None for flat ones."""
        if len(self.input_shape) == 2:
            return (*self.input_shape, 1)
        return self.input_shape if len(self.input_shape) == 3 else None

    def __call__(self, raw) -> torch.Tensor:
        raw = np.asarray(raw)
        if raw.shape[1:] != self.input_shape and raw.reshape(len(raw), -1).shape[1] != self.n_features:
            raise LayerwiseError(
                f"inputs shaped {raw.shape[1:]} do not fit a stack pretrained on {self.input_shape}: "
                "use data of the shape it was pretrained on")
        if self.layout == "flat":
            x = torch.from_numpy(raw.reshape(len(raw), -1).astype(np.float32))  # a fresh array: scaled in place
        else:  # [N, H, W, C], the last axis the channels, as the per-channel mean and std are
            x = torch.from_numpy(raw.reshape(len(raw), *self.image_shape).astype(np.float32))
        if self.mode == "unit":
            x = x.sub_(self.lo).div_(self.hi - self.lo).clamp_(0.0, 1.0)
        else:
            x = x.sub_(self.mean).div_(self.std)
        return x if self.layout == "flat" else x.permute(0, 3, 1, 2).contiguous()

    def rows(self, raw: np.ndarray, rows: torch.Tensor, path: Optional[Path] = None) -> torch.Tensor:
        """The preprocessed ``raw[rows]``, a chunk at a time: in RAM, or memory-mapped at ``path``.

        A memory-mapped ``raw`` is read one chunk of rows at a time, so neither it nor
        its float copy is ever whole in memory.
        """
        out = rows_file(path, len(rows), self.output_shape)
        if out is None:  # written chunk by chunk into one tensor: no second copy to concatenate them
            out = torch.empty((len(rows), *self.output_shape))
        return map_batches(lambda chunk: self(raw[chunk.numpy()]), rows, out=out)

    def to_dict(self) -> Dict[str, Any]:
        out = {"mode": self.mode, "input_shape": list(self.input_shape), "lo": self.lo, "hi": self.hi,
               "layout": self.layout}
        if self.mode == "standardize":
            out.update(mean=self.mean, std=self.std)
        return out

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Preprocessing":
        """From :meth:`to_dict` output; stacks saved before the image layout existed are flat."""
        return cls(d["mode"], tuple(d["input_shape"]), d["lo"], d["hi"], d.get("mean"), d.get("std"),
                   d.get("layout", "flat"))
