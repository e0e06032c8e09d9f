"""Adam (Kingma & Ba, *Adam: a method for stochastic optimization*, ICLR 2015), ``torch.optim.Adam``'s step.

For every parameter ``w`` with gradient ``g`` at step ``t`` (from 1), its group's rate ``eta``, the
decay rates ``beta1, beta2``, ``eps`` and the L2 weight decay ``lambda``::

    d = g + lambda w
    m = beta1 m + (1 - beta1) d                 (a lerp of m towards d)
    v = beta2 v + (1 - beta2) d^2
    w = w - eta / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

which is ``torch.optim.Adam(params, lr, betas, eps, weight_decay)`` without amsgrad or maximize,
operation for operation (``torch._foreach`` calls in the order of its multi-tensor step, which
equal its single-tensor step elementwise): the same weights, bit for bit (a test checks both).

Why not ``torch.optim.Adam`` itself: the first torch optimizer a process builds imports
``torch._dynamo`` (torch.optim's methods are wrapped by ``torch._disable_dynamo``), which costs
seconds, and every autoencoder pretraining and every fine-tuning paid it. Its
:meth:`state_dict` has torch's layout (``state[i]`` with ``step``, ``exp_avg``, ``exp_avg_sq``),
so a checkpoint written by ``torch.optim.Adam`` resumes here, and ``torch.load(weights_only=True)``
reads it.
"""
from typing import Any, Dict, Iterable, List

import torch

#: torch.optim.Adam's defaults
DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}


class Adam:
    """Adam over ``groups`` (dicts with ``params`` and optionally ``lr``, ``weight_decay`` and other keys,
    kept as given, e.g. a group's ``name``); ``lr`` etc. are the defaults of groups that do not set them."""

    def __init__(self, groups: Iterable[Dict[str, Any]], **defaults):
        defaults = {**DEFAULTS, **defaults}
        self.param_groups = [{**defaults, **group, "params": list(group["params"])} for group in groups]
        #: per parameter: the step count and the two moment estimates, made at its first step
        self.state: Dict[torch.Tensor, Dict[str, Any]] = {}

    def parameters(self) -> List[torch.Tensor]:
        """Every parameter, group after group: the numbering of :meth:`state_dict`."""
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a ``.grad`` (as torch, the others are left alone)."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            (beta1, beta2), lr = group["betas"], group["lr"]
            states = [self.state_of(p) for p in params]
            for state in states:
                state["step"] += 1
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            means, squares = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
            torch._foreach_lerp_(means, grads, 1 - beta1)
            torch._foreach_mul_(squares, beta2)
            torch._foreach_addcmul_(squares, grads, grads, 1 - beta2)
            step_sizes = [-(lr / (1 - beta1 ** s["step"])) for s in states]
            denominators = torch._foreach_sqrt(squares)
            torch._foreach_div_(denominators, [(1 - beta2 ** s["step"]) ** 0.5 for s in states])
            torch._foreach_add_(denominators, group["eps"])
            torch._foreach_addcdiv_(params, means, denominators, step_sizes)

    def state_of(self, p: torch.Tensor) -> Dict[str, Any]:
        if p not in self.state:
            self.state[p] = {"step": 0, "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                             "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        return self.state[p]

    def state_dict(self) -> Dict[str, Any]:
        """The moments (not copies) and the groups' settings, in ``torch.optim.Adam.state_dict()``'s layout."""
        number = {p: i for i, p in enumerate(self.parameters())}
        groups = [{**{k: v for k, v in group.items() if k != "params"}, "params": [number[p] for p in group["params"]]}
                  for group in self.param_groups]
        state = {number[p]: {"step": torch.tensor(float(s["step"])), "exp_avg": s["exp_avg"],
                             "exp_avg_sq": s["exp_avg_sq"]} for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, saved: Dict[str, Any]) -> None:
        """Put back the moments and steps of :meth:`state_dict` (or of ``torch.optim.Adam``'s, same parameters)."""
        sizes = [len(group["params"]) for group in saved["param_groups"]]
        if sizes != [len(group["params"]) for group in self.param_groups]:
            raise ValueError(f"the saved optimizer has groups of {sizes} parameters, this one of "
                             f"{[len(group['params']) for group in self.param_groups]}")
        self.state = {}
        for i, p in enumerate(self.parameters()):
            if i in saved["state"]:
                entry = saved["state"][i]
                self.state[p] = {"step": int(float(entry["step"])), "exp_avg": entry["exp_avg"].to(p).clone(),
                                 "exp_avg_sq": entry["exp_avg_sq"].to(p).clone()}
