"""Stochastic gradient descent with momentum and weight decay: ``torch.optim.SGD``'s update in fused calls.

For every parameter ``w`` with a gradient ``g``, its group's weight decay
``lambda``, the momentum ``mu`` and the rate ``eta``, one step is

    d = g + lambda w
    v = mu v + d          (v starts at 0, so the first step has v = d)
    w = w - eta v         (with mu = 0: w = w - eta d, and no velocity is kept)

which is ``torch.optim.SGD(lr=eta, momentum=mu, weight_decay=lambda)`` with
its defaults (dampening 0, no Nesterov), operation for operation: the same
``_foreach`` calls in the same order, so the weights agree with torch's bit
for bit (a test checks it). A velocity that starts at zeros gives
``mu * 0 + d = d`` exactly, torch's copy of ``d`` at the first step, without
a branch.

Why not ``torch.optim.SGD`` itself: around the same arithmetic its ``step``
adds Python work per minibatch (option checks, list building, profiler hooks),
of the order of a small RBM's whole update, and an RBM epoch pays it at every
minibatch (measured: ``examples/benchmarks/design_notes.md``). And the first
torch optimizer of a process imports ``torch._dynamo``, which costs seconds;
this class touches neither.

:meth:`state_dict` has torch's layout (velocities as ``state[i]["momentum_buffer"]``,
``i`` numbering the parameters group after group), plain tensors and numbers,
so checkpoints load with ``torch.load(weights_only=True)`` and a checkpoint
written by ``torch.optim.SGD`` resumes here.
"""
from typing import Any, Dict, Iterable, List, Tuple

import torch

from ..core.nograd import without_grad


class SGD:
    """SGD over ``groups`` (dicts with ``params`` and an optional ``weight_decay``) at rate ``lr``."""

    def __init__(self, groups: Iterable[Dict[str, Any]], lr: float, momentum: float = 0.0):
        self.param_groups = [{"params": list(group["params"]), "lr": lr, "momentum": momentum,
                              "weight_decay": group.get("weight_decay", 0.0)} for group in groups]
        #: velocity by parameter; none without momentum.
        self.velocity: Dict[torch.Tensor, torch.Tensor] = {
            p: torch.zeros_like(p) for group in self.param_groups if group["momentum"] for p in group["params"]}
        #: parameter -> rate, for those whose gradient :meth:`fold` sent to their velocity: the step moves them.
        self.folded: Dict[torch.Tensor, float] = {}

    def parameters(self) -> List[torch.Tensor]:
        """Every parameter, group after group: the numbering of :meth:`state_dict`."""
        return [p for group in self.param_groups for p in group["params"]]

    @without_grad
    def fold(self, parameters: Iterable[torch.Tensor]) -> Dict[torch.Tensor, Tuple[torch.Tensor, float]]:
        """Where the coming gradient ``g`` of each of ``parameters`` goes at once, as ``(buffer, scale)``:
        the caller adds ``scale * g`` to ``buffer`` (in its matrix products, as a hand-written loop does)
        instead of forming ``.grad``, and :meth:`step` completes the update.

        With momentum: ``v = mu v + lambda w`` now, ``v += g`` by the caller, ``w -= eta v`` at the step.
        Without momentum or weight decay: ``w -= eta g`` by the caller. (Without momentum but with weight
        decay nothing is folded: the decay must not change ``w`` before ``g`` is computed from it, nor
        after ``g`` was added.) The same update as
        :meth:`step`'s up to the order of the float32 sums (last bits): one pass over the weights fewer
        and no gradient tensor, which is most of what separated the trainer from a plain loop.
        """
        wanted, targets = set(parameters), {}
        for group in self.param_groups:
            lr, mu, decay = group["lr"], group["momentum"], group["weight_decay"]
            if decay and not mu:
                continue
            for p in (p for p in group["params"] if p in wanted):
                if not mu:
                    targets[p] = (p, -lr)
                    continue
                velocity = self.velocity[p].mul_(mu)
                targets[p] = (velocity.add_(p, alpha=decay) if decay else velocity, 1.0)
                self.folded[p] = lr
        return targets

    @without_grad
    def step(self) -> None:
        """One update of every parameter that has a ``.grad`` (as torch, the others are left alone), and the
        last move of those that :meth:`fold` sent to their velocity."""
        for p, lr in self.folded.items():
            p.add_(self.velocity[p], alpha=-lr)
        self.folded.clear()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            steps = [p.grad for p in params]
            if group["weight_decay"]:
                steps = torch._foreach_add(steps, params, alpha=group["weight_decay"])
            if group["momentum"]:
                velocity = [self.velocity[p] for p in params]
                torch._foreach_mul_(velocity, group["momentum"])
                torch._foreach_add_(velocity, steps)
                steps = velocity
            torch._foreach_add_(params, steps, alpha=-group["lr"])

    def state_dict(self) -> Dict[str, Any]:
        """The velocities (not copies) and the groups' settings, in ``torch.optim.SGD.state_dict()``'s layout."""
        number = {p: i for i, p in enumerate(self.parameters())}
        groups = [{"lr": group["lr"], "momentum": group["momentum"], "weight_decay": group["weight_decay"],
                   "params": [number[p] for p in group["params"]]} for group in self.param_groups]
        return {"state": {number[p]: {"momentum_buffer": v} for p, v in self.velocity.items()}, "param_groups": groups}

    def load_state_dict(self, saved: Dict[str, Any]) -> None:
        """Put back the velocities of :meth:`state_dict` (or of ``torch.optim.SGD``'s, for the same parameters)."""
        sizes = [len(group["params"]) for group in saved["param_groups"]]
        if sizes != [len(group["params"]) for group in self.param_groups]:
            raise ValueError(f"the saved optimizer has groups of {sizes} parameters, this one of "
                             f"{[len(group['params']) for group in self.param_groups]}")
        for i, p in enumerate(self.parameters()):
            buffer = saved["state"].get(i, {}).get("momentum_buffer")
            if p in self.velocity and buffer is not None:
                self.velocity[p].copy_(buffer)
