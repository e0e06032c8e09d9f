"""The one abstraction fine-tuning consumes: a body.

A body is ordered layer groups (bottom first), the preprocessing that turns
raw data into the first group's input, and the size of what comes out. It is
built from a pretrained stack, from the same stack re-initialised (the
control), or from a torchvision backbone (:mod:`finetune.networks.backbones`), and
schedules never ask where it came from.
"""
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from pretrain.core.batches import rows_within
from pretrain.core.errors import LayerwiseError
from pretrain.layers.plain import glorot_bound
from pretrain.training.stack import Stack


#: rows per chunk of inference through a body whose widest tensor is not known (as before bodies knew theirs)
UNSIZED_CHUNK_ROWS = 1024


class Body(nn.Module):
    """Ordered layer groups + their preprocessing + their output size.

    ``groups[i]`` maps the output of ``groups[i-1]`` to features of size
    ``group_features[i]`` (flattened by ``tail`` when needed); ``tail`` is a
    parameter-free module applied after the last group (pooling, flattening).
    A body without groups (``pixels``) passes its ``in_features`` inputs on.
    """

    def __init__(self, groups: Sequence[nn.Module], group_features: Sequence[int],
                 preprocess: Callable[[np.ndarray], torch.Tensor], name: str,
                 group_names: Optional[Sequence[str]] = None, tail: Optional[nn.Module] = None,
                 info: Optional[dict] = None, in_features: Optional[int] = None, row_bytes: Optional[int] = None):
        super().__init__()
        if len(groups) != len(group_features) or not (groups or in_features):
            raise ValueError("one output size per group, or in_features for a body without groups")
        self.in_features = in_features
        self.groups = nn.ModuleList(groups)
        self.group_features = list(group_features)
        self.group_names = list(group_names or [f"group{i + 1}" for i in range(len(groups))])
        self.preprocess = preprocess
        self.name = name
        self.tail = tail if tail is not None else nn.Identity()
        self.info = dict(info or {})
        #: bytes of the widest tensor one input row makes in the body, where known (sizes inference chunks)
        self.row_bytes = row_bytes
        #: how many bottom groups are frozen (see :func:`finetune.training.freezing.freeze_to`)
        self.frozen = 0

    @property
    def out_features(self) -> int:
        return self.group_features[-1] if self.groups else self.in_features

    @property
    def chunk_rows(self) -> int:
        """Rows per chunk of inference: :func:`pretrain.core.batches.rows_within` the widest tensor where it is
        known (stacks, pixels), else ``UNSIZED_CHUNK_ROWS`` (backbones: their widest maps depend on the input size)."""
        return rows_within(self.row_bytes) if self.row_bytes else UNSIZED_CHUNK_ROWS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_range(x)

    def forward_range(self, x: torch.Tensor, start: int = 0, stop: Optional[int] = None) -> torch.Tensor:
        """Run groups ``start..stop-1`` on ``x`` (the output of group ``start-1``); the tail follows the top group.

        ``forward_range(forward_range(x, 0, k), k) == forward(x)`` for every k:
        what lets the frozen bottom run once, cached, while the groups above it train.
        """
        stop = len(self.groups) if stop is None else stop
        for group in list(self.groups)[start:stop]:
            x = group(x)
        return self.tail(x) if start < stop == len(self.groups) else x

    def train(self, mode: bool = True) -> "Body":
        """Like ``nn.Module.train``, but frozen groups stay in eval mode (BatchNorm statistics do not move)."""
        super().train(mode)
        for group in list(self.groups)[:self.frozen]:
            group.eval()
        return self

    def drop_top(self, k: int) -> "Body":
        """The same body without its top ``k`` groups (tweaking or replacing upper layers)."""
        if k == 0:
            return self
        if not 0 < k < len(self.groups):
            raise LayerwiseError(
                f"drop_top={k}: {self.name} has {len(self.groups)} layer groups; drop at most "
                f"{len(self.groups) - 1}")
        return Body(list(self.groups)[:-k], self.group_features[:-k], self.preprocess,
                    f"{self.name}[:-{k}]", self.group_names[:-k], self.tail, self.info, self.in_features,
                    self.row_bytes)


def glorot_reset(module: nn.Module) -> None:
    """:func:`glorot_bound` uniform weights and zero biases for every ``nn.Linear`` and ``nn.Conv2d``: the
    random-init control."""
    for part in module.modules():
        if isinstance(part, (nn.Linear, nn.Conv2d)):
            bound = glorot_bound(part.weight)
            nn.init.uniform_(part.weight, -bound, bound)
            if part.bias is not None:  # a dictionary's Linear has none
                nn.init.zeros_(part.bias)


def body_from_stack(stack: Stack, name: str, random_init: bool = False) -> Body:
    """A body from a pretrained stack: one group per layer (``Linear`` or ``Conv2d`` + activation [+ pool]),
    the top group's output flattened.

    With ``random_init`` the architecture and preprocessing are kept and the
    weights drawn afresh: the control every comparison needs.
    """
    groups: List[nn.Module] = stack.layer_modules()
    if random_init:
        for group in groups:
            glorot_reset(group)
    names = [f"{layer.kind}{i + 1}" for i, layer in enumerate(stack.layers)]
    return Body(groups, [layer.n_hidden for layer in stack.layers], stack.preprocess, name, names, nn.Flatten(),
                row_bytes=stack.row_bytes,
                info={"data": stack.info.get("data"), "split_seed": stack.info.get("split_seed"),
                      # enough to rebuild the same modules without the stack file (see finetune.networks.classifier)
                      "recipe": {"kind": "stack", "layers": [layer.config() for layer in stack.layers],
                                 "preprocessing": stack.preprocessing.to_dict()}})


def pixels_body(preprocessing, name: str = "pixels") -> Body:
    """A body without layers: the preprocessed input is the feature vector (``--from pixels``)."""
    return Body([], [], preprocessing, name, in_features=preprocessing.n_features,
                row_bytes=4 * preprocessing.n_features,  # float32 inputs
                info={"recipe": {"kind": "pixels", "preprocessing": preprocessing.to_dict()}})


def torchvision_body(spec: str, image_shape, input_size: Optional[int] = None, adapt_first_conv: bool = False,
                     load_weights: bool = True, value_range: Optional[Sequence[float]] = None) -> Body:
    """A body from ``torchvision:SPEC`` for images shaped ``image_shape`` = (H, W, C); see
    :func:`finetune.networks.backbones.backbone_parts` for the arguments."""
    from .backbones import backbone_parts  # torchvision only where a backbone is used
    return Body(**backbone_parts(spec, image_shape, input_size, adapt_first_conv, load_weights, value_range)).train()
