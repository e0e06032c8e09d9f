"""ImageNet backbones from torchvision as bodies: ``--from torchvision:NAME[@WEIGHTS][:NODE]``.

* ``NAME``: a convolutional classification model of ``torchvision.models``
  (resnet18, vgg16, mobilenet_v3_small, efficientnet_b0, convnext_tiny, ...).
* ``WEIGHTS``: a value of the model's weights enum (``DEFAULT`` when omitted,
  e.g. ``IMAGENET1K_V1``), ``none`` for the architecture with random
  initialisation, or the path of a local state-dict file. Torchvision's weights
  are read from torch.hub's cache, ``$TORCH_HOME/hub/checkpoints``, hash-checked
  and never unpickled (:mod:`.weights`).
* ``NODE``: cut the network at an earlier graph node (a name from
  :func:`backbone_nodes`, or a prefix of names such as ``layer3``, meaning the
  last node under it), as ``torchvision.models.feature_extraction`` does.

The classifier is dropped and the rest split into layer groups by family
(:mod:`.groups`); global average pooling and flattening follow the last group.
The fully connected layers in the classifiers of VGG, AlexNet and MobileNetV3
go with the classifier: features are the pooled maps of the last convolution
(512 for VGG, 576 for mobilenet_v3_small), not fc7's 4096. Inputs are adapted
inside the first group, batch by batch (:mod:`.inputs`).
"""
import difflib
from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from torch import nn

from pretrain.core.errors import LayerwiseError

from .groups import cut_at_node, group_output_channels, layer_groups, usable_nodes
from .inputs import (GlobalAveragePool, ImagesToTensor, check_images, image_value_range, input_adapter,
                     sum_rgb_filters)
from .weights import load_backbone_weights, resolve_weights, weights_label

__all__ = ["BackboneSpec", "backbone_nodes", "image_value_range", "backbone_parts", "supported_models"]

# Vision transformers have no convolutional stages to pool and split.
TRANSFORMER_PREFIXES = ("vit_", "swin_", "maxvit_")
# Their constructors warn unless told how to initialise; True is what they do by default.
BUILD_KWARGS = {"googlenet": {"init_weights": True}, "inception_v3": {"init_weights": True}}


@dataclass(frozen=True)
class BackboneSpec:
    """``NAME[@WEIGHTS][:NODE]`` as given after ``torchvision:``."""

    name: str
    weights: str = "DEFAULT"
    node: Optional[str] = None

    @classmethod
    def parse(cls, spec: str) -> "BackboneSpec":
        head, colon, node = spec.rpartition(":")
        if not colon or "/" in node or "\\" in node:  # no NODE; a ':' inside a weights path stays there
            head, node = spec, None
        name, _, weights = head.partition("@")
        if not name or (node is not None and not node) or ("@" in head and not weights):
            raise LayerwiseError(f"cannot read 'torchvision:{spec}': write torchvision:NAME[@WEIGHTS][:NODE], "
                                 "e.g. torchvision:resnet18, torchvision:resnet18@none:layer3")
        check_model_name(name)
        return cls(name, weights or "DEFAULT", node)


def supported_models() -> List[str]:
    """The torchvision classification models usable as backbones (the convolutional ones)."""
    import torchvision
    return [name for name in torchvision.models.list_models(module=torchvision.models)
            if not name.startswith(TRANSFORMER_PREFIXES)]


def check_model_name(name: str) -> None:
    if name.startswith(TRANSFORMER_PREFIXES):
        raise LayerwiseError(f"torchvision:{name} is a vision transformer; image backbones here are "
                             "convolutional: use e.g. resnet50, convnext_tiny or efficientnet_b0")
    models = supported_models()
    if name not in models:
        close = difflib.get_close_matches(name, models, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise LayerwiseError(f"unknown torchvision model '{name}': {hint}choose one of {', '.join(models)}")


def build_model(name: str) -> nn.Module:
    """The architecture with random weights: torchvision downloads nothing for ``weights=None``."""
    import torchvision
    return torchvision.models.get_model(name, weights=None, **BUILD_KWARGS.get(name, {}))


def backbone_parts(spec: str, image_shape: Optional[Tuple[int, ...]], input_size: Optional[int] = None,
                   adapt_first_conv: bool = False, load_weights: bool = True,
                   value_range: Optional[Sequence[float]] = None) -> dict:
    """The constructor arguments of a :class:`finetune.networks.body.Body` from ``torchvision:SPEC``
    for images shaped ``image_shape`` = (H, W, C).

    ``value_range`` = (black, white) of the raw pixels (see :func:`image_value_range`;
    None: 0..255 for integer images, 0..1 for float ones). ``load_weights=False``
    builds the same modules without reading any weights (to rebuild a saved
    classifier whose state dict is loaded afterwards).
    """
    check_images(image_shape, adapt_first_conv)
    parsed = BackboneSpec.parse(spec)
    weights = resolve_weights(parsed.name, parsed.weights)
    model = build_model(parsed.name)
    if load_weights:
        load_backbone_weights(model, parsed.name, weights)
    if adapt_first_conv:
        sum_rgb_filters(model)
    adapter = input_adapter(parsed.name, weights, image_shape, input_size, adapt_first_conv)
    plans = layer_groups(parsed.name, model)
    if parsed.node is not None:
        plans = cut_at_node(plans, parsed.node, model, parsed.name)
    groups = [plan.module() for plan in plans]
    groups[0] = nn.Sequential(OrderedDict([("adapt_input", adapter), ("group", groups[0])]))
    features = group_output_channels(groups, image_shape, parsed.name, adapter.size)
    to_tensor = ImagesToTensor(tuple(image_shape), value_range)
    recipe = {"kind": "torchvision", "spec": spec, "image_shape": list(image_shape), "input_size": adapter.size,
              "adapt_first_conv": bool(adapt_first_conv), "value_range": to_tensor.value_range}
    info = {"recipe": recipe, "weights": weights_label(weights), "input_size": adapter.size,
            "mean": adapter.mean.flatten().tolist(), "std": adapter.std.flatten().tolist()}
    return {"groups": groups, "group_features": features, "preprocess": to_tensor, "name": f"torchvision:{spec}",
            "group_names": [plan.name for plan in plans], "tail": GlobalAveragePool(), "info": info}


def backbone_nodes(name: str) -> List[str]:
    """Graph node names of ``name`` usable as NODE (``finetune --list-backbones NAME``), bottom first."""
    check_model_name(name)
    model = build_model(name)
    return usable_nodes(model, layer_groups(name, model))
