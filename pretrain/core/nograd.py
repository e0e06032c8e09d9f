"""``torch.no_grad`` for what runs at every minibatch: free where gradients are already off.

``@torch.no_grad()`` builds and enters a context at every call, a cost that
counts beside a whole RBM step at batch 10, which calls three such functions
(the closed-form gradient, the optimizer's fold and its step).
:func:`run_epoch <pretrain.training.epoch.run_epoch>` turns gradients off once
per epoch; inside it, functions wrapped by :func:`without_grad` run straight
away, and called from anywhere else they still run without them.
"""
import functools

import torch


def without_grad(function):
    """``function`` run under ``torch.no_grad()``, entered only when gradients are on."""
    @functools.wraps(function)
    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return function(*args, **kwargs)
        with torch.no_grad():
            return function(*args, **kwargs)
    return run
