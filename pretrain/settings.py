"""Each command's settings, declared once: a field's default, its help text and its bounds.

The command-line options (:func:`pretrain.commandline.setting_option` derives each click option's flag,
default, help and range from its field), the library's keyword defaults (``pretrain_stack``'s are
:data:`PRETRAIN`'s) and the help text all come from these dataclasses; ``tests/test_settings.py`` compares
them. :class:`CommonSettings` holds what both commands take; ``finetune.settings`` declares finetune's.
Torch-free: the commands import it before ``--help``.
"""
import typing
from dataclasses import Field, dataclass, field, fields
from typing import Mapping, Optional

from .core.device import DEVICES
from .core.errors import LayerwiseError


def setting(default, help: str, *, low=None, high=None, low_open: bool = False, high_open: bool = False,
            choices: Optional[tuple] = None):
    """A settings field: ``default``, the option's ``help``, and the range ``[low, high]`` (``*_open``: that end
    excluded) or the ``choices`` a value must fall in."""
    return field(default=default, metadata={"help": help, "low": low, "high": high, "low_open": low_open,
                                            "high_open": high_open, "choices": choices})


def declared(settings: type, name: str) -> Field:
    """The field ``name`` of the settings class ``settings``."""
    return next(spec for spec in fields(settings) if spec.name == name)


def value_type(spec: Field) -> type:
    """The type of a field's values: ``int`` for ``Optional[int]``."""
    return next((kind for kind in typing.get_args(spec.type) if kind is not type(None)), spec.type)


def range_text(spec: Field) -> str:
    """A field's range in words: ``at least 1``, ``above 0``, ``at least 0 and below 1``."""
    meta = spec.metadata
    ends = [f"{word} {meta[end]:g}" for end, word in (("low", "above" if meta["low_open"] else "at least"),
                                                      ("high", "below" if meta["high_open"] else "at most"))
            if meta[end] is not None]
    return " and ".join(ends)


def in_range(value, spec: Field) -> bool:
    """Whether ``value`` lies in the field's range (NaN lies in none)."""
    meta = spec.metadata
    above = meta["low"] is None or (value > meta["low"] if meta["low_open"] else value >= meta["low"])
    below = meta["high"] is None or (value < meta["high"] if meta["high_open"] else value <= meta["high"])
    return bool(above and below)


def check_ranges(settings: type, values: Mapping) -> None:
    """Refuse, in one line, a value of ``values`` outside the range its field of ``settings`` declares: the
    library's check of what the command's click ranges check (an unset optional, ``None``, passes)."""
    for spec in fields(settings):
        value, bounds = values.get(spec.name), range_text(spec)
        if value is not None and bounds and not in_range(value, spec):
            raise LayerwiseError(f"{spec.name}={value}: {spec.name} must be {bounds}")


@dataclass
class CommonSettings:
    """What both commands take."""

    device: str = setting("auto", "Where torch runs.", choices=DEVICES)
    threads: int = setting(0, "CPU threads for torch (0: OMP_NUM_THREADS when set, else one per core the current "
                              "load leaves free, shared by torchrun's processes or --jobs). Fix it for runs that "
                              "must match bit for bit across machines.", low=0)
    data_dir: Optional[str] = setting(None, "Where torchvision datasets live")
    split_seed: int = setting(0, "Seed of the held-out test split of data without one (shared by pretrain and "
                                 "finetune).", low=0)


@dataclass
class PretrainSettings(CommonSettings):
    """How ``pretrain`` trains a stack (the layers and the data aside)."""

    epochs: int = setting(10, "Epochs per layer (per-layer override: epochs=N in the spec).", low=1)
    batch_size: int = setting(100, "The global batch: under torchrun each of the N processes trains on 1/N of it.",
                              low=1)
    lr: float = setting(0.0, "Learning rate (0: each kind's default; per-layer: lr=X in the spec).", low=0)
    seed: int = setting(0, "Seed for initialisation, shuffling and sampling.", low=0)
    val_fraction: float = setting(0.05, "Held-out slice of the pretraining data for monitoring.", low=0, high=1,
                                  high_open=True)
    cache_dir: Optional[str] = setting(None, "Keep the cached codes in memory-mapped files here (data bigger than "
                                             "RAM); private to the run.")
    resume: bool = setting(False, "Continue an interrupted run in --out.")
    overwrite: bool = setting(False, "Replace an earlier run in --out.")
    ais_every: int = setting(0, "Every N epochs, a quick AIS log-likelihood of RBM layers (100 runs x 1000 betas) "
                                "in the history and training curves; 0: off.", low=0)


#: the defaults, as the library's keyword arguments take them
PRETRAIN = PretrainSettings()
