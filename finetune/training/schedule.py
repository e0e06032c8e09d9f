"""Fine-tuning schedules as lists of stages, with discriminative learning rates.

A stage says how many bottom groups stay frozen and how the learning rate is
spread over what trains: the head at ``lr``, the top trainable body group at
``lr * body_lr_scale``, each group further down at the rate of the one above
times ``lr_decay`` (fastai's learning-rate slices, ULMFiT's discriminative
fine-tuning, Howard & Ruder 2018). ``lr_decay=1`` (the default) gives every
unfrozen group the same ``lr * body_lr_scale``.

Each schedule is an entry of :data:`SCHEDULE_REGISTRY`: the stages it makes and its help, from which
``--schedule``'s choices and help are derived; a name without an entry fails in one line.
"""
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, List, Optional

from pretrain.core.errors import LayerwiseError

if TYPE_CHECKING:  # torch stays unimported until a schedule is used: `finetune --help` reads SCHEDULES
    from torch import nn

    from ..networks.body import Body

#: what every schedule can add from the unlabeled pool (:mod:`.semi`); here, without torch, for `--help`
SEMI_METHODS = ("none", "pseudo-label", "reconstruction", "consistency")
#: the choices of ``--augment`` (:mod:`.augment`), here without torch for `--help`
AUGMENTS = ("none", "shift", "crop-flip")


@dataclass(frozen=True)
class Stage:
    """One phase of training: groups below ``frozen`` are fixed; the rest train at discriminative rates."""

    name: str
    frozen: int
    body_lr_scale: float = 1.0
    lr_decay: float = 1.0


@dataclass(frozen=True)
class Schedule:
    """A schedule: ``stages(n_groups, unfreeze, body_lr_scale, lr_decay)`` for a body of ``n_groups`` >= 1 groups
    (the head's stage first where it has one), and its one-line ``help``."""

    help: str
    stages: Callable[[int, int, float, float], List[Stage]]


def _head(n_groups: int) -> Stage:
    return Stage("head", frozen=n_groups)


#: the schedules by name; ``--schedule`` takes these names and shows their help.
SCHEDULE_REGISTRY = {
    "linear": Schedule("the body frozen: feature extraction, a linear (or MLP) probe on features computed once",
                       lambda n, unfreeze, scale, decay: [_head(n)]),
    "two-stage": Schedule("fastai's fine_tune: the head on the frozen body, then the top --unfreeze groups "
                          "(default all) with the head at the discriminative rates",
                          lambda n, unfreeze, scale, decay: [_head(n), Stage(f"top {unfreeze}", n - unfreeze, scale,
                                                                             decay)]),
    "full": Schedule("everything trainable from the start, body and head at --lr",
                     lambda n, unfreeze, scale, decay: [Stage("full", frozen=0)]),
    "gradual": Schedule("ULMFiT's gradual unfreezing: the head, then one more group per stage, top down, down to "
                        "--unfreeze groups",
                        lambda n, unfreeze, scale, decay: [_head(n)] + [Stage(f"top {k}", n - k, scale, decay)
                                                                         for k in range(1, unfreeze + 1)]),
}
SCHEDULES = tuple(SCHEDULE_REGISTRY)


def check_schedule(name: str) -> str:
    """``name`` if it is a known schedule; a one-line error naming the valid ones otherwise."""
    if name not in SCHEDULE_REGISTRY:
        raise LayerwiseError(f"unknown schedule {name!r}: use one of {', '.join(SCHEDULES)}")
    return name


def make_stages(name: str, n_groups: int, unfreeze: Optional[int] = None,
                body_lr_scale: float = 0.1, lr_decay: float = 1.0) -> List[Stage]:
    """The stages of schedule ``name`` for a body of ``n_groups`` groups (``unfreeze``: how many top groups)."""
    schedule = SCHEDULE_REGISTRY[check_schedule(name)]
    if body_lr_scale <= 0 or lr_decay <= 0:
        raise LayerwiseError("body_lr_scale and lr_decay must be positive, e.g. 0.1 and 1.0")
    if n_groups == 0:  # a body without layers (pixels): every schedule trains the head alone
        return [Stage("head", frozen=0)]
    unfreeze = n_groups if unfreeze is None else unfreeze
    if not 1 <= unfreeze <= n_groups:
        raise LayerwiseError(f"unfreeze={unfreeze}: the body has {n_groups} layer groups; "
                             f"use 1 to {n_groups}")
    return schedule.stages(n_groups, unfreeze, body_lr_scale, lr_decay)


def param_groups(body: "Body", head: "nn.Module", stage: Stage, lr: float) -> List[dict]:
    """Optimizer parameter groups of ``stage``: the head at ``lr``, then the trainable body groups top down.

    Each group carries its ``name`` so the rates can be read back from the optimizer.
    """
    groups = [{"params": list(head.parameters()), "lr": lr, "name": "head"}]
    rate = lr * stage.body_lr_scale
    for index in reversed(range(stage.frozen, len(body.groups))):
        params = list(body.groups[index].parameters())
        if params:
            groups.append({"params": params, "lr": rate, "name": body.group_names[index]})
        rate *= stage.lr_decay
    return groups
