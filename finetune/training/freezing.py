"""Freezing the bottom of a body, fastai-style, with BatchNorm kept still.

``freeze_to(body, n)`` freezes the groups below index ``n`` and unfreezes the
rest; a negative ``n`` counts from the top (``freeze_to(body, -1)``: only the
top group trains), as fastai's ``Learner.freeze_to`` does;
``freeze_to(body, len(body.groups))`` freezes all, ``freeze_to(body, 0)`` none. Frozen means both
``requires_grad=False`` and eval mode: ``Body.train()`` keeps frozen groups in
``eval()``, because BatchNorm in train mode would keep moving its running
statistics (and Dropout keep dropping) even with no gradient (timm's
``freeze`` does the same).
"""
from pretrain.core.errors import LayerwiseError

from ..networks.body import Body


def freeze_to(body: Body, n: int) -> Body:
    """Freeze groups ``[0, n)`` and unfreeze ``[n, len)``; ``n < 0`` counts from the top. Returns ``body``."""
    count = len(body.groups)
    frozen = n + count if n < 0 else n
    if not 0 <= frozen <= count:
        raise LayerwiseError(f"cannot freeze to {n}: {body.name} has {count} layer groups; "
                             f"use {-count}..{count}")
    for index, group in enumerate(body.groups):
        group.requires_grad_(index >= frozen)
    body.frozen = frozen
    body.train(body.training)  # re-apply the modes: newly frozen groups go to eval
    return body
