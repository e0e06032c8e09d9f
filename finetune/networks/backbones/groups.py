"""Layer groups of torchvision backbones, and cuts at a graph node.

The classifier is dropped; what remains is split into ordered layer groups
(Howard & Ruder 2018, ULMFiT; fastai's ``freeze_to``) so that the schedules
freeze and unfreeze a backbone as they do a pretrained stack. The grouper is
chosen by the model's family, the longest key of :data:`GROUPERS` that starts
its name, in the spirit of timm's ``group_matcher``:

* ResNet, ResNeXt, Wide ResNet: ``stem`` (conv1, bn1, relu, maxpool), ``layer1`` .. ``layer4``;
  RegNet: ``stem``, ``block1`` .. ``block4``;
* VGG, AlexNet, SqueezeNet: one group per convolutional block, each ending in its max-pool;
* the others (MobileNet, EfficientNet, ConvNeXt, DenseNet, MnasNet, ShuffleNet,
  GoogLeNet, Inception): one group per resolution of the feature stages, a new
  group starting where a stage halves the feature map, the ``stem`` taking
  everything down to a quarter of the input size (4 groups for all of them).

Parts of the original head that are not the classifier are kept in the last
group: DenseNet's final ReLU, ConvNeXt's pooled LayerNorm. With a NODE the
groups below the node's group stay whole and the node's group is cut at the
node (as ``torchvision.models.feature_extraction`` cuts), so freezing stays per group.
"""
import difflib
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from pretrain.core.errors import LayerwiseError

# Children of a torchvision model that belong to its head (or its training-only auxiliary heads).
HEAD_CHILDREN = ("avgpool", "dropout", "fc", "classifier", "aux1", "aux2", "AuxLogits")
# The image size at which the strides of the feature stages are read: every stride of every
# family shows at it (Inception needs at least 75 pixels), and the groups come out as at 224.
STRUCTURE_PROBE_SIZE = 128


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


Grouper = Callable[[nn.Module], List[GroupPlan]]


def stem_and_layers(model: nn.Module) -> List[GroupPlan]:
    """ResNet, ResNeXt, Wide ResNet: the stem, then ``layer1`` .. ``layer4``."""
    stem = GroupPlan("stem", "", children_of(model, ("conv1", "bn1", "relu", "maxpool")))
    return [stem] + [GroupPlan(layer, "", children_of(model, (layer,)))
                     for layer in ("layer1", "layer2", "layer3", "layer4")]


def stem_and_trunk_blocks(model: nn.Module) -> List[GroupPlan]:
    """RegNet: the stem, then the blocks of ``trunk_output``."""
    blocks = model.trunk_output
    return [GroupPlan("stem", "", children_of(model, ("stem",)))] + [
        GroupPlan(block, "trunk_output", children_of(blocks, (block,))) for block, _ in blocks.named_children()]


def blocks_ending_in_max_pool(model: nn.Module) -> List[GroupPlan]:
    """VGG, AlexNet, SqueezeNet: the children of ``features`` cut after each max-pool."""
    plans: List[GroupPlan] = []
    current: "OrderedDict[str, nn.Module]" = OrderedDict()
    for key, child in model.features.named_children():
        current[key] = child
        if isinstance(child, nn.MaxPool2d):
            plans.append(GroupPlan(f"block{len(plans) + 1}", "features", current))
            current = OrderedDict()
    if current:  # SqueezeNet ends on a Fire module after its last pool
        plans.append(GroupPlan(f"block{len(plans) + 1}", "features", current))
    return plans


def no_head(model: nn.Module) -> "OrderedDict[str, nn.Module]":
    return OrderedDict()


def by_resolution(parent: str, head: Callable[[nn.Module], "OrderedDict[str, nn.Module]"] = no_head) -> Grouper:
    """A grouper splitting the children of ``parent`` ("" for the model's own) by resolution,
    with ``head(model)`` (kept parts of the original head) finishing the last group."""
    def grouper(model: nn.Module) -> List[GroupPlan]:
        module = model.get_submodule(parent) if parent else model
        # The model's own children run in their registration order (ShuffleNet, GoogLeNet, Inception).
        stages = [(key, child) for key, child in module.named_children() if parent or key not in HEAD_CHILDREN]
        plans = groups_by_resolution(parent, stages)
        plans[-1].finish.update(head(model))
        return plans
    return grouper


def densenet_relu(model: nn.Module) -> "OrderedDict[str, nn.Module]":
    """torchvision's DenseNet.forward applies a ReLU after ``features``."""
    return OrderedDict(head_relu=nn.ReLU())


def convnext_pooled_norm(model: nn.Module) -> "OrderedDict[str, nn.Module]":
    """ConvNeXt's LayerNorm of the pooled features; pooling first keeps it exact."""
    return OrderedDict(head_pool=nn.AdaptiveAvgPool2d(1), head_norm=model.classifier[0])


# Model family (the start of its name) -> its grouper; DEFAULT_GROUPER for families not listed.
GROUPERS: Dict[str, Grouper] = {
    "resnet": stem_and_layers, "resnext": stem_and_layers, "wide_resnet": stem_and_layers,
    "regnet": stem_and_trunk_blocks,
    "vgg": blocks_ending_in_max_pool, "alexnet": blocks_ending_in_max_pool, "squeezenet": blocks_ending_in_max_pool,
    "mobilenet": by_resolution("features"), "efficientnet": by_resolution("features"),
    "densenet": by_resolution("features", densenet_relu), "convnext": by_resolution("features", convnext_pooled_norm),
    "mnasnet": by_resolution("layers"),
    "shufflenet": by_resolution(""), "googlenet": by_resolution(""), "inception": by_resolution(""),
}
DEFAULT_GROUPER = by_resolution("")


def family(name: str) -> Optional[str]:
    """The key of :data:`GROUPERS` that starts ``name`` (the longest), or None."""
    return max((key for key in GROUPERS if name.startswith(key)), key=len, default=None)


def layer_groups(name: str, model: nn.Module) -> List[GroupPlan]:
    """The ordered groups of the backbone ``name`` (see the module docstring), classifier dropped."""
    return GROUPERS.get(family(name), DEFAULT_GROUPER)(model)


def children_of(module: nn.Module, names: Sequence[str]) -> "OrderedDict[str, nn.Module]":
    return OrderedDict((child, getattr(module, child)) for child in names)


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


# -- cuts at a graph node ------------------------------------------------------------------------

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
