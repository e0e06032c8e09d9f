"""The layer contract, the layer registry and the ``KIND:UNITS[,key=value...]`` spec.

A layer is an ``nn.Module`` with

* ``forward(v)``: the deterministic code passed to the layer above (mean-field
  hidden probabilities for RBMs, the encoder output for autoencoders);
* ``loss(v)``: a scalar whose gradient is the layer's learning rule, so one
  trainer with any torch optimizer trains every kind of layer;
* ``decode(h)``: the mean reconstruction of the input from codes, so
  ``reconstruct(v) = decode(forward(v))`` gives the one-step mean-field
  reconstruction whose error is reported in training and evaluation alike;
* ``to_modules()``: plain torch modules (``nn.Linear`` + activation) holding a
  copy of the weights, which is all fine-tuning ever sees.

New kinds register themselves with :func:`register_layer` (one file per kind),
in the manner of torchvision's model registry.
"""
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LayerwiseError

#: Options every kind accepts: per-layer overrides of the trainer's settings.
COMMON_OPTIONS = {
    "epochs": (0, "epochs for this layer (0: the command's --epochs)"),
    "lr": (0.0, "learning rate for this layer (0: the command's --lr, else the kind's default)"),
}

_REGISTRY: Dict[str, type] = {}


def register_layer(cls):
    """Class decorator adding a layer kind to the registry under ``cls.kind``."""
    if cls.kind in _REGISTRY:
        raise ValueError(f"layer kind {cls.kind!r} is already registered")
    _REGISTRY[cls.kind] = cls
    return cls


def list_layers() -> List[str]:
    """The registered layer kinds, sorted."""
    return sorted(_REGISTRY)


def get_layer_class(kind: str) -> type:
    """The class registered as ``kind``; a one-line error naming the valid kinds otherwise."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise LayerwiseError(
            f"unknown layer kind {kind!r}: use one of {', '.join(list_layers())} "
            "(see pretrain --list-layers)") from None


def describe_layers() -> str:
    """Human-readable list of kinds and their options, for ``--list-layers``."""
    lines = []
    for kind in list_layers():
        cls = _REGISTRY[kind]
        lines.append(f"{kind}: {cls.summary}  (default lr {cls.default_lr}, {cls.optimizer})")
        for name, (default, help_text) in {**cls.options, **COMMON_OPTIONS}.items():
            lines.append(f"    {name + '=' + str(default):<22} {help_text}")
    return "\n".join(lines)


def sparsity_penalty(mean_activation: torch.Tensor, target: float) -> torch.Tensor:
    """KL(target || mean activation) summed over units (Ng, *Sparse autoencoder*, 2011).

    ``sum_j rho log(rho/q_j) + (1-rho) log((1-rho)/(1-q_j))`` with ``q_j`` the
    mean activation of unit ``j`` over the batch; shared by the sparse
    autoencoder and the RBM sparsity target (Lee et al. 2008 use its gradient).
    """
    q = mean_activation.clamp(1e-6, 1 - 1e-6)
    rho = target
    return (rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))).sum()


def bernoulli_sample(p: torch.Tensor) -> torch.Tensor:
    """Binary sample of probabilities ``p``: ``uniform < p`` is ~4x faster than ``torch.bernoulli`` on CPU."""
    return (torch.rand_like(p) < p).to(p.dtype)


class Layer(nn.Module, ABC):
    """Base class of every layer kind; see the module docstring for the contract."""

    kind: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: "unit" when the layer models inputs in [0, 1], "real" for standardised inputs.
    input_range: ClassVar[str] = "unit"
    #: "sgd" (with the layer's momentum) or "adam".
    optimizer: ClassVar[str] = "sgd"
    default_lr: ClassVar[float] = 0.1
    #: kind-specific options: name -> (default, help).
    options: ClassVar[Dict[str, tuple]] = {}

    def __init__(self, n_visible: int, n_hidden: int, **options):
        super().__init__()
        self.n_visible = n_visible
        self.n_hidden = n_hidden
        self.hparams = {name: default for name, (default, _) in self.options.items()}
        self.hparams.update(options)

    @classmethod
    def for_input(cls, n_visible: int, n_hidden: int, input_range: str, **options) -> "Layer":
        """Build a layer fed inputs of ``input_range``; kinds whose loss depends on it override this."""
        return cls(n_visible, n_hidden, **options)

    # The contract -------------------------------------------------------------
    @abstractmethod
    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """Deterministic code of ``v`` passed to the layer above."""

    @abstractmethod
    def loss(self, v: torch.Tensor) -> torch.Tensor:
        """Scalar whose gradient is the layer's learning rule."""

    @abstractmethod
    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """Mean reconstruction of the input from codes ``h`` (top-down pass)."""

    @abstractmethod
    def to_modules(self) -> nn.Sequential:
        """Plain torch modules with a copy of the weights, mapping inputs to codes."""

    # Shared behaviour ---------------------------------------------------------
    @property
    def code_range(self) -> str:
        """Range of the codes this layer passes up: "unit" for sigmoid codes, "real" otherwise."""
        return "unit"

    def init_from_data(self, v: torch.Tensor) -> None:
        """Optional data-dependent initialisation from a sample of the training inputs."""

    def reconstruct(self, v: torch.Tensor) -> torch.Tensor:
        """One-step mean-field reconstruction: ``decode(forward(v))``."""
        return self.decode(self.forward(v))

    def reconstruction_error(self, v: torch.Tensor) -> torch.Tensor:
        """Mean squared error per input unit of the one-step mean-field reconstruction."""
        return F.mse_loss(self.reconstruct(v), v)

    def monitors(self, train: torch.Tensor, val: torch.Tensor) -> Dict[str, float]:
        """Extra per-epoch figures comparing a training slice with the held-out slice."""
        return {}

    def parameter_groups(self, weight_decay: float) -> List[dict]:
        """Optimizer groups: weight decay on weight matrices only, never on biases."""
        matrices = [p for p in self.parameters() if p.ndim > 1]
        vectors = [p for p in self.parameters() if p.ndim <= 1]
        return [{"params": matrices, "weight_decay": weight_decay},
                {"params": vectors, "weight_decay": 0.0}]

    def config(self) -> Dict[str, Any]:
        """Constructor arguments as plain values: enough to rebuild the layer without pickling."""
        return {"kind": self.kind, "n_visible": self.n_visible, "n_hidden": self.n_hidden,
                "options": dict(self.hparams)}


def build_layer(config: Dict[str, Any]) -> Layer:
    """Rebuild a layer from :meth:`Layer.config` output."""
    cls = get_layer_class(config["kind"])
    return cls(config["n_visible"], config["n_hidden"], **config["options"])


def _parse_value(kind: str, name: str, text: str, default):
    """Convert ``text`` to the type of ``default``; a one-line error otherwise."""
    try:
        if isinstance(default, bool):
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        return type(default)(text)
    except ValueError:
        raise LayerwiseError(
            f"layer {kind}: option {name}={text!r} should be a {type(default).__name__} "
            f"(default {default})") from None


@dataclass
class LayerSpec:
    """One ``-l KIND:UNITS[,key=value...]`` argument, validated against the registry."""

    kind: str
    units: int
    options: Dict[str, Any] = field(default_factory=dict)
    epochs: int = 0
    lr: float = 0.0

    @classmethod
    def parse(cls, text: str) -> "LayerSpec":
        """Parse e.g. ``rbm:500,k=1`` or ``ae:250,noise=mask:0.3,sparsity=0.05,beta=3``."""
        kind, sep, rest = text.strip().partition(":")
        layer_cls = get_layer_class(kind)
        parts = rest.split(",") if sep else [""]
        try:
            units = int(parts[0])
            if units < 1:
                raise ValueError
        except ValueError:
            raise LayerwiseError(
                f"bad layer spec {text!r}: write KIND:UNITS[,key=value...], e.g. {kind}:500") from None
        known = {**layer_cls.options, **COMMON_OPTIONS}
        options, common = {}, {}
        for item in parts[1:]:
            name, eq, value = item.partition("=")
            if not eq or name not in known:
                raise LayerwiseError(
                    f"bad option {item!r} in {text!r}: {kind} takes {', '.join(sorted(known))} "
                    "as key=value (see pretrain --list-layers)")
            parsed = _parse_value(kind, name, value, known[name][0])
            (common if name in COMMON_OPTIONS else options)[name] = parsed
        return cls(kind, units, options, **common)

    def build(self, n_visible: int, input_range: str) -> Layer:
        """The layer, fed ``n_visible`` inputs whose range is ``input_range`` ("unit" or "real")."""
        layer_cls = get_layer_class(self.kind)
        return layer_cls.for_input(n_visible, self.units, input_range, **self.options)

    def __str__(self) -> str:
        extras = {**self.options, **({"epochs": self.epochs} if self.epochs else {}),
                  **({"lr": self.lr} if self.lr else {})}
        return ",".join([f"{self.kind}:{self.units}"] + [f"{k}={v}" for k, v in extras.items()])


