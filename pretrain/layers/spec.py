"""The ``KIND:UNITS[,key=value...]`` layer spec and the ``--list-layers`` text.

Both derive from the declarations: each kind's :attr:`Layer.options` and the
trainer's per-layer overrides :data:`TRAINER_OPTIONS` (``epochs=``, ``lr=``),
which belong to the greedy trainer, not to the layer: a spec keeps them as
``spec.epochs`` and ``spec.lr`` and never hands them to the layer.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, Tuple, Union

from ..core.errors import LayerwiseError
from .base import Layer
from .options import Option, options_table, validate_options
from .registry import get_layer_class, list_layers

#: Per-layer overrides of the trainer's settings, accepted after every kind's own options.
TRAINER_OPTIONS = options_table(
    Option("epochs", 0, "epochs for this layer", low=1, zero_means="the command's --epochs"),
    Option("lr", 0.0, "learning rate for this layer", low=0, closed="neither",
           zero_means="the command's --lr, else the kind's default"),
)


def describe_layers() -> str:
    """Human-readable list of kinds and their options with valid values, for ``--list-layers``."""
    lines = []
    for kind in list_layers():
        cls = get_layer_class(kind)
        lines.append(f"{kind}: {cls.summary}  (default lr {cls.default_lr}, {cls.optimizer})")
        lines += [f"    {option.describe()}" for option in cls.options.values()]
    lines.append("every kind also takes the trainer's per-layer overrides:")
    lines += [f"    {option.describe()}" for option in TRAINER_OPTIONS.values()]
    return "\n".join(lines)


@dataclass
class LayerSpec:
    """One ``-l KIND:UNITS[,key=value...]`` argument, validated against the declarations when made."""

    kind: str
    units: int
    options: Dict[str, Any] = field(default_factory=dict)
    epochs: int = 0
    lr: float = 0.0

    def __post_init__(self):
        layer_cls = get_layer_class(self.kind)
        if isinstance(self.units, bool) or not isinstance(self.units, int) or self.units < 1:
            raise LayerwiseError(f"bad layer spec {self.kind}:{self.units}: UNITS must be an int >= 1")
        checked = validate_options(self.kind, layer_cls.options, self.options)
        self.options = {name: checked[name] for name in self.options}
        trainer = validate_options(self.kind, TRAINER_OPTIONS, {"epochs": self.epochs, "lr": self.lr})
        self.epochs, self.lr = trainer["epochs"], trainer["lr"]

    @classmethod
    def parse(cls, text: str) -> "LayerSpec":
        """Parse e.g. ``rbm:500,k=1`` or ``ae:250,noise=mask:0.3,sparsity=0.05,beta=3``."""
        kind, sep, rest = text.strip().partition(":")
        layer_cls = get_layer_class(kind)
        parts = rest.split(",") if sep else [""]
        try:
            units = int(parts[0])
        except ValueError:
            example = 16 if layer_cls.convolutional else 500  # filters, hidden units
            raise LayerwiseError(
                f"bad layer spec {text!r}: write KIND:UNITS[,key=value...], e.g. {kind}:{example}") from None
        if units < 1:
            raise LayerwiseError(f"bad layer spec {text!r}: the count must be at least 1")
        known = {**layer_cls.options, **TRAINER_OPTIONS}
        options, trainer = {}, {}
        for item in parts[1:]:
            name, eq, value = item.partition("=")
            if not eq or name not in known:
                raise LayerwiseError(
                    f"bad option {item!r} in {text!r}: {kind} takes {', '.join(sorted(known))} "
                    "as key=value (see pretrain --list-layers)")
            if name in options or name in trainer:
                raise LayerwiseError(f"bad layer spec {text!r}: {name}= is given twice; give it once")
            (trainer if name in TRAINER_OPTIONS else options)[name] = known[name].parse(value, kind)
        layer_cls.check_options(options)
        return cls(kind, units, options, **trainer)

    def build(self, input_shape: Union[int, Tuple[int, ...]], input_range: str) -> Layer:
        """The layer, fed inputs shaped ``input_shape`` (an int: vectors of that size) whose range is
        ``input_range`` ("unit" or "real")."""
        shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
        return get_layer_class(self.kind).for_input(shape, self.units, input_range, **self.options)

    def __str__(self) -> str:
        extras = {**self.options, **({"epochs": self.epochs} if self.epochs else {}),
                  **({"lr": self.lr} if self.lr else {})}
        return ",".join([f"{self.kind}:{self.units}"] + [f"{k}={v}" for k, v in extras.items()])
