"""ImageNet backbones from torchvision as bodies: ``--from torchvision:NAME[@WEIGHTS][:NODE]``.

* ``NAME``: a convolutional classification model of ``torchvision.models``
  (resnet18, vgg16, mobilenet_v3_small, efficientnet_b0, convnext_tiny, ...).
* ``WEIGHTS``: a value of the model's weights enum (``DEFAULT`` when omitted,
  e.g. ``IMAGENET1K_V1``), ``none`` for the architecture with random
  initialisation, or the path of a local state-dict file. Torchvision's weights
  load through ``torch.hub`` and its cache, ``$TORCH_HOME/hub/checkpoints``.
* ``NODE``: cut the network at an earlier graph node (a name from
  :func:`backbone_nodes`, or a prefix of names such as ``layer3``, meaning the
  last node under it), as ``torchvision.models.feature_extraction`` does.

The classifier is dropped; what remains is split into ordered layer groups
(Howard & Ruder 2018, ULMFiT; fastai's ``freeze_to``) so that the schedules
freeze and unfreeze a backbone as they do a pretrained stack:

* ResNet, ResNeXt, Wide ResNet: ``stem`` (conv1, bn1, relu, maxpool), ``layer1`` .. ``layer4``;
  RegNet: ``stem``, ``block1`` .. ``block4``;
* VGG, AlexNet, SqueezeNet: one group per convolutional block, each ending in its max-pool;
* the others (MobileNet, EfficientNet, ConvNeXt, DenseNet, MnasNet, ShuffleNet,
  GoogLeNet, Inception): one group per resolution of the feature stages, a new
  group starting where a stage halves the feature map, the ``stem`` taking
  everything down to a quarter of the input size (4 groups for all of them).

With ``NODE`` the groups below the node's group stay whole and the node's
group is cut at the node, so freezing stays per group. Global average pooling
and flattening follow the last group. Parts of the original head that are not
the classifier are kept in the last group: DenseNet's final ReLU, ConvNeXt's
pooled LayerNorm. The fully connected layers in the classifiers of VGG, AlexNet
and MobileNetV3 go with them: features are the pooled maps of the last
convolution (512 for VGG, 576 for mobilenet_v3_small), not fc7's 4096.

Inputs are adapted inside the first group, batch by batch, so that a data set
is held at its own size: resize to the weights' crop size (or ``input_size``)
with antialiased bilinear interpolation of the whole image (no crop: small
images keep their borders), grayscale repeated to three channels, and the
normalisation of the weights' own transforms. With ``adapt_first_conv`` the
first convolution takes one channel instead, its filters summed over RGB
(timm's ``adapt_input_conv``); the normalisation is then the mean over RGB.
"""
import difflib
import os
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import List, Optional, Sequence, Tuple
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pretrain.errors import LayerwiseError

from .body import Body

# Vision transformers have no convolutional stages to pool and split.
TRANSFORMER_PREFIXES = ("vit_", "swin_", "maxvit_")
# Children of a torchvision model that belong to its head (or its training-only auxiliary heads).
HEAD_CHILDREN = ("avgpool", "dropout", "fc", "classifier", "aux1", "aux2", "AuxLogits")
# GoogLeNet and Inception v3 are trained on inputs scaled to [-1, 1]: with
# torchvision's weights their ``transform_input`` maps ImageNet-normalised inputs
# there, so normalising with mean = std = 0.5 gives the network the same numbers.
HALF_NORMALISED = ("googlenet", "inception_v3")
# Their constructors warn unless told how to initialise; True is what they do by default.
BUILD_KWARGS = {"googlenet": {"init_weights": True}, "inception_v3": {"init_weights": True}}
# The image size at which the strides of the feature stages are read: every stride of every
# family shows at it (Inception needs at least 75 pixels), and the groups come out as at 224.
STRUCTURE_PROBE_SIZE = 128


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


def torchvision_body(spec: str, image_shape: Optional[Tuple[int, ...]], input_size: Optional[int] = None,
                     adapt_first_conv: bool = False, load_weights: bool = True,
                     value_range: Optional[Sequence[float]] = None) -> Body:
    """A body from ``torchvision:SPEC`` for images shaped ``image_shape`` = (H, W, C).

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
    body = Body(groups, features, to_tensor, f"torchvision:{spec}", [plan.name for plan in plans],
                GlobalAveragePool(), info)
    return body.train()


def check_images(image_shape: Optional[Tuple[int, ...]], adapt_first_conv: bool) -> None:
    if image_shape is None or len(image_shape) != 3:
        raise LayerwiseError("an image backbone needs images; DATA is tabular: use a pretrained stack instead")
    channels = image_shape[2]
    if channels not in (1, 3):
        raise LayerwiseError(f"images with {channels} channels: an ImageNet backbone takes grayscale or RGB images")
    if adapt_first_conv and channels != 1:
        raise LayerwiseError("--adapt-first-conv is for grayscale images; these are RGB: leave it out")


def backbone_nodes(name: str) -> List[str]:
    """Graph node names of ``name`` usable as NODE (``finetune --list-backbones NAME``), bottom first."""
    check_model_name(name)
    model = build_model(name)
    return usable_nodes(model, layer_groups(name, model))


# -- weights -------------------------------------------------------------------------------------

def default_weights(name: str):
    import torchvision
    return torchvision.models.get_model_weights(name).DEFAULT


def is_torchvision_weights(weights) -> bool:
    return weights is not None and not isinstance(weights, str)


def resolve_weights(name: str, value: str):
    """``value`` -> a torchvision weights enum member, None (``none``) or a local file path."""
    import torchvision
    if value.lower() == "none":
        return None
    enum = torchvision.models.get_model_weights(name)
    members = {key.upper(): member for key, member in enum.__members__.items()}
    if value.upper() in members:
        return members[value.upper()]
    if os.path.isfile(value) or os.sep in value or "/" in value or value.endswith((".pth", ".pt")):
        return value  # a file, read only when the weights are loaded
    raise LayerwiseError(f"unknown weights '{value}' for {name}: use {', '.join(enum.__members__)}, "
                         "none (random initialisation) or the path of a state-dict file")


def weights_label(weights) -> str:
    if weights is None:
        return "none"
    return weights if isinstance(weights, str) else weights.name


def build_model(name: str) -> nn.Module:
    """The architecture with random weights: torchvision downloads nothing for ``weights=None``."""
    import torchvision
    return torchvision.models.get_model(name, weights=None, **BUILD_KWARGS.get(name, {}))


def load_backbone_weights(model: nn.Module, name: str, weights) -> None:
    if weights is None:
        return
    if isinstance(weights, str):
        state = read_state_dict(weights)
        source = weights
    else:
        state = fetch_torchvision_weights(name, weights)
        source = f"the {weights.name} weights"
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    misshapen = [key for key in expected if key in state and state[key].shape != expected[key].shape]
    if missing or unexpected or misshapen:
        found = ", ".join(f"{len(keys)} {what} (e.g. {keys[0]})" for keys, what in
                          ((missing, "missing"), (unexpected, "unexpected"), (misshapen, "misshapen")) if keys)
        raise LayerwiseError(f"{source} do not fit torchvision's {name}: {found}; "
                             f"give a state dict saved from torchvision.models.{name}()")
    model.load_state_dict(state)


def read_state_dict(path: str) -> dict:
    if not os.path.isfile(path):
        raise LayerwiseError(f"weights file {path} not found: give the path of a state-dict file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises pickle, zip and runtime errors alike for a foreign file
        raise LayerwiseError(f"cannot read weights from {path} ({type(error).__name__}): "
                             "save them with torch.save(model.state_dict(), path)") from None
    if not isinstance(state, dict):
        raise LayerwiseError(f"{path} holds a {type(state).__name__}, not a state dict: "
                             "save it with torch.save(model.state_dict(), path)")
    return state


def fetch_torchvision_weights(name: str, weights) -> dict:
    """Torchvision's own loading: the ``torch.hub`` cache, else a download into it."""
    try:
        return weights.get_state_dict(progress=False, check_hash=True, map_location="cpu")
    except OSError as error:  # URLError, timeouts, refused connections: no network
        folder = os.path.join(torch.hub.get_dir(), "checkpoints")
        file_name = os.path.basename(urlparse(weights.url).path)
        reason = getattr(error, "reason", error)
        raise LayerwiseError(
            f"ImageNet weights for {name} ({weights.name}) are not cached and cannot be downloaded ({reason}): "
            f"put {file_name} (from {weights.url}) in {folder}, or use torchvision:{name}@none") from None


def sum_rgb_filters(model: nn.Module) -> None:
    """Make the first convolution take one channel: its filters summed over R, G, B.

    A gray image ``g`` repeated to RGB gives ``sum_c W_c * g = (sum_c W_c) * g``,
    so the summed filter responds to gray input as the RGB filter does to its
    repetition (timm's ``adapt_input_conv``), up to the per-channel
    normalisation, which becomes one mean and one std (those of R, G, B averaged).
    """
    conv = next(module for module in model.modules() if isinstance(module, nn.Conv2d))
    conv.weight = nn.Parameter(conv.weight.detach().sum(dim=1, keepdim=True))
    conv.in_channels = 1


def input_adapter(name: str, weights, image_shape: Tuple[int, int, int], input_size: Optional[int],
                  adapt_first_conv: bool) -> "ImageInput":
    """The weights' own input transform; local files and ``none`` take that of the DEFAULT weights."""
    transforms = (weights if is_torchvision_weights(weights) else default_weights(name)).transforms()
    size = int(input_size or transforms.crop_size[0])
    if size < 1:
        raise LayerwiseError(f"--input-size {size}: give a positive number of pixels, e.g. 64 or 224")
    mean, std = normalisation(name, transforms, adapt_first_conv)
    return ImageInput(image_shape[:2], size, mean, std, repeat_gray=image_shape[2] == 1 and not adapt_first_conv)


def normalisation(name: str, transforms, one_channel: bool) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    mean, std = ((0.5,) * 3, (0.5,) * 3) if name in HALF_NORMALISED else (tuple(transforms.mean), tuple(transforms.std))
    if one_channel:
        return (float(np.mean(mean)),), (float(np.mean(std)),)
    return mean, std


# -- layer groups --------------------------------------------------------------------------------

@dataclass
class GroupPlan:
    """A layer group: consecutive children of the module at ``parent`` in the torchvision model.

    ``finish`` holds kept parts of the original head, run after the children;
    ``cut_at``, a graph node of the children (named relative to ``parent``) where the group stops.
    """

    name: str
    parent: str
    children: "OrderedDict[str, nn.Module]"
    finish: "OrderedDict[str, nn.Module]" = field(default_factory=OrderedDict)
    cut_at: Optional[str] = None

    def module(self) -> nn.Module:
        if self.cut_at is None:
            return nn.Sequential(OrderedDict([*self.children.items(), *self.finish.items()]))
        from torchvision.models.feature_extraction import create_feature_extractor
        extractor = create_feature_extractor(nn.Sequential(self.children).eval(), {self.cut_at: "out"},
                                             suppress_diff_warning=True)
        return NodeOutput(extractor)


def layer_groups(name: str, model: nn.Module) -> List[GroupPlan]:
    """The ordered groups of the backbone (see the module docstring), classifier dropped."""
    if hasattr(model, "layer4"):  # ResNet, ResNeXt, Wide ResNet
        stem = GroupPlan("stem", "", children_of(model, ("conv1", "bn1", "relu", "maxpool")))
        return [stem] + [GroupPlan(layer, "", children_of(model, (layer,)))
                         for layer in ("layer1", "layer2", "layer3", "layer4")]
    if hasattr(model, "trunk_output"):  # RegNet
        blocks = model.trunk_output
        return [GroupPlan("stem", "", children_of(model, ("stem",)))] + [
            GroupPlan(block, "trunk_output", children_of(blocks, (block,))) for block, _ in blocks.named_children()]
    if name.startswith(("vgg", "alexnet", "squeezenet")):
        return blocks_ending_in_max_pool(model.features)
    parent, children = feature_stages(model)
    plans = groups_by_resolution(parent, children)
    plans[-1].finish.update(kept_head(name, model))
    return plans


def children_of(module: nn.Module, names: Sequence[str]) -> "OrderedDict[str, nn.Module]":
    return OrderedDict((child, getattr(module, child)) for child in names)


def blocks_ending_in_max_pool(features: nn.Sequential) -> List[GroupPlan]:
    plans: List[GroupPlan] = []
    current: "OrderedDict[str, nn.Module]" = OrderedDict()
    for key, child in features.named_children():
        current[key] = child
        if isinstance(child, nn.MaxPool2d):
            plans.append(GroupPlan(f"block{len(plans) + 1}", "features", current))
            current = OrderedDict()
    if current:  # SqueezeNet ends on a Fire module after its last pool
        plans.append(GroupPlan(f"block{len(plans) + 1}", "features", current))
    return plans


def feature_stages(model: nn.Module) -> Tuple[str, List[Tuple[str, nn.Module]]]:
    """Where the feature stages live, and the stages in the order the model runs them."""
    for parent in ("features", "layers"):  # MobileNet, EfficientNet, ConvNeXt, DenseNet; MnasNet
        if isinstance(getattr(model, parent, None), nn.Sequential):
            return parent, list(getattr(model, parent).named_children())
    # ShuffleNet, GoogLeNet, Inception: the top-level children, run in their registration order
    return "", [(key, child) for key, child in model.named_children() if key not in HEAD_CHILDREN]


@torch.no_grad()
def groups_by_resolution(parent: str, children: List[Tuple[str, nn.Module]]) -> List[GroupPlan]:
    """Split at each stage that shrinks the feature map (stride 2), the stem down to 1/4 of the input.

    The strides are read from a forward pass at ``STRUCTURE_PROBE_SIZE`` so the
    groups do not depend on the input size.
    """
    first_conv = next(module for _, child in children for module in child.modules() if isinstance(module, nn.Conv2d))
    x = torch.zeros(1, first_conv.in_channels, STRUCTURE_PROBE_SIZE, STRUCTURE_PROBE_SIZE)
    plans: List[GroupPlan] = []
    group_size = previous = STRUCTURE_PROBE_SIZE
    for key, child in children:
        x = child.eval()(x)
        size = x.shape[-1]
        shrinks = size < 0.75 * previous  # 0.75, not 1: unpadded 3x3 convs trim 2 pixels without striding
        if not plans or (shrinks and group_size <= STRUCTURE_PROBE_SIZE / 4):
            plans.append(GroupPlan("stem" if not plans else f"stage{len(plans)}", parent, OrderedDict()))
        plans[-1].children[key] = child
        group_size = previous = size
    return plans


def kept_head(name: str, model: nn.Module) -> "OrderedDict[str, nn.Module]":
    """Parts of the original head between the features and the classifier."""
    if name.startswith("densenet"):  # torchvision's DenseNet.forward applies ReLU after ``features``
        return OrderedDict(head_relu=nn.ReLU())
    if name.startswith("convnext"):  # LayerNorm of the pooled features; pooling first keeps it exact
        return OrderedDict(head_pool=nn.AdaptiveAvgPool2d(1), head_norm=model.classifier[0])
    return OrderedDict()


def locate_node(plans: List[GroupPlan], node: str) -> Optional[Tuple[int, str]]:
    """(group index, node name relative to the group) for a graph node of the full model, or None."""
    for index, plan in enumerate(plans):
        if plan.parent and not node.startswith(plan.parent + "."):
            continue
        relative = node[len(plan.parent) + 1:] if plan.parent else node
        if relative.split(".")[0] in plan.children:
            return index, relative
    return None


def usable_nodes(model: nn.Module, plans: List[GroupPlan]) -> List[str]:
    """The model's graph nodes (eval mode) that lie in a group and output an activation."""
    from torchvision.models.feature_extraction import get_graph_node_names
    _, nodes = get_graph_node_names(model, suppress_diff_warning=True)
    return [node for node in nodes if locate_node(plans, node) is not None and not reads_parameter(model, node)]


def reads_parameter(model: nn.Module, node: str) -> bool:
    """True for the node of a parameter read in ``forward`` (ConvNeXt's layer scale), named
    ``owner.owner_path_attr`` by the tracer: a weight, not an activation to cut at."""
    owner, _, last = node.rpartition(".")
    prefix = owner.replace(".", "_") + "_"
    if not owner or not last.startswith(prefix):
        return False
    attribute = f"{owner}.{last[len(prefix):]}"
    return attribute in dict(model.named_parameters()) or attribute in dict(model.named_buffers())


def cut_at_node(plans: List[GroupPlan], node: str, model: nn.Module, name: str) -> List[GroupPlan]:
    """The groups below ``node``'s group, then that group cut at ``node``."""
    known = usable_nodes(model, plans)
    found = locate_node(plans, node)
    if found is None or not any(n == node or n.startswith(node + ".") for n in known):
        close = difflib.get_close_matches(node, known, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        stages = [f"{plan.parent}.{key}" if plan.parent else key for plan in plans for key in plan.children]
        raise LayerwiseError(f"{name} has no node '{node}': {hint}use a stage ({', '.join(stages)}) "
                             f"or a node that finetune --list-backbones {name} lists")
    index, relative = found
    return plans[:index] + [replace(plans[index], cut_at=relative)]


class NodeOutput(nn.Module):
    """The output of a feature extractor with one return node, as a tensor."""

    def __init__(self, extractor: nn.Module):
        super().__init__()
        self.extractor = extractor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)["out"]


@torch.no_grad()
def group_output_channels(groups: List[nn.Module], image_shape, name: str, size: int) -> List[int]:
    """Channels after each group, from one zero image run through them in eval mode."""
    x = torch.zeros(1, image_shape[2], image_shape[0], image_shape[1])
    channels = []
    try:
        for group in groups:
            x = group.eval()(x)
            channels.append(int(x.shape[1]))
    except RuntimeError as error:  # a pooling or convolution left with an empty feature map
        raise LayerwiseError(f"torchvision:{name} cannot take {size}-pixel inputs "
                             f"({str(error).splitlines()[0]}): use a larger --input-size") from None
    return channels


# -- inputs --------------------------------------------------------------------------------------

def image_value_range(images: np.ndarray) -> Optional[List[float]]:
    """(black, white) of raw images: None (the default) for integer images (0..255) and
    float images within [0, 1], else their (min, max), as ``pretrain``'s unit scaling does."""
    lo, hi = float(images.min()), float(images.max())
    if images.dtype.kind in "iu" or (lo >= 0 and hi <= 1):
        return None
    return [lo, hi if hi > lo else lo + 1.0]


class ImagesToTensor:
    """Raw images ``[N,H,W]`` or ``[N,H,W,C]`` -> float32 ``[N,C,H,W]`` in [0, 1].

    Pixels map linearly from ``value_range`` = (black, white) to [0, 1] and are
    clipped there; by default integer images span 0..255 and float images 0..1.
    Resizing and normalising wait for :class:`ImageInput`, batch by batch.
    """

    def __init__(self, image_shape: Tuple[int, int, int], value_range: Optional[Sequence[float]] = None):
        self.image_shape = tuple(int(d) for d in image_shape)
        self.value_range = None if value_range is None else [float(v) for v in value_range]

    def __call__(self, raw) -> torch.Tensor:
        raw = np.asarray(raw)
        height, width, channels = self.image_shape
        if raw.shape[1:] not in ((height, width, channels), (height, width) if channels == 1 else None):
            raise LayerwiseError(f"images shaped {raw.shape[1:]} do not fit a backbone set up for "
                                 f"{self.image_shape}: use data of that shape")
        lo, hi = self.value_range or ((0.0, 255.0) if raw.dtype.kind in "iu" else (0.0, 1.0))
        if self.value_range is None and raw.dtype.kind == "f" and raw.size and (raw.min() < 0 or raw.max() > 1):
            raise LayerwiseError(f"float images range over [{raw.min():g}, {raw.max():g}], not [0, 1]: give "
                                 "value_range=image_value_range(training images) or uint8 images")
        x = torch.from_numpy(raw.reshape(len(raw), height, width, channels)).permute(0, 3, 1, 2).float()
        return ((x - lo) / (hi - lo)).clamp_(0.0, 1.0).contiguous()


class ImageInput(nn.Module):
    """The weights' input transform on a batch: resize, gray to RGB, ``(x - mean) / std``."""

    def __init__(self, image_size: Sequence[int], size: int, mean: Sequence[float], std: Sequence[float],
                 repeat_gray: bool):
        super().__init__()
        self.size = size
        self.resize = tuple(image_size) != (size, size)
        self.repeat_gray = repeat_gray
        # Not persistent: rebuilt from the recipe, so state dicts hold only weights.
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        if self.repeat_gray:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std


class GlobalAveragePool(nn.Module):
    """``[N, C, H, W] -> [N, C]``: the mean over positions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))
