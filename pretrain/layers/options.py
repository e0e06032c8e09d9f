"""One declaration per option: its default, type, valid values and one-line doc.

A layer kind lists its hyperparameters as :class:`Option` values; from that
one declaration come the ``-l KIND:UNITS,key=value`` parsing
(:meth:`Option.parse`), the range checks of the command line and of the Python
API alike (:meth:`Option.validate`, called by every layer constructor), the
``--list-layers`` text (:meth:`Option.describe`) and the scikit-learn
estimators' parameters and constraints (:meth:`Option.constraints`).

Valid values are an interval (``low``/``high`` with ``closed`` as in
:class:`sklearn.utils._param_validation.Interval`) or a set of ``choices``;
``zero_means`` documents 0 as a sentinel outside the interval (``epochs=0``:
the command's ``--epochs``; ``sparsity=0``: off). ``check`` validates values
with a syntax of their own (such as ``noise=mask:0.3``); it is given the value and
the owner to name in its error.
"""
import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from ..core.errors import LayerwiseError

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")
_BRACKETS = {"both": "[]", "left": "[)", "right": "(]", "neither": "()"}


@dataclass(frozen=True)
class Option:
    """One hyperparameter: ``name=default`` of type ``type(default)``, in its valid range."""

    name: str
    default: Any
    doc: str
    low: Optional[float] = None
    high: Optional[float] = None
    closed: str = "both"
    choices: Tuple[str, ...] = ()
    zero_means: str = ""
    check: Optional[Callable[[Any, str], Any]] = None

    @property
    def type(self) -> type:
        return type(self.default)

    def parse(self, text: str, owner: str) -> Any:
        """``text`` converted to the option's type and validated; one-line error otherwise."""
        try:
            if self.type is bool:
                lowered = text.lower()
                if lowered not in _TRUE + _FALSE:
                    raise ValueError
                value = lowered in _TRUE
            else:
                value = self.type(text)
        except ValueError:
            raise LayerwiseError(f"{owner}: option {self.name}={text!r} should be a {self.type.__name__} "
                                 f"(default {self.default})") from None
        return self.validate(value, owner)

    def validate(self, value: Any, owner: str) -> Any:
        """``value`` as a plain value of the option's type, or a one-line error naming the valid values."""
        value = self._coerce(value, owner)
        if self.zero_means and value == 0:
            return value
        if self.choices and value not in self.choices:
            raise LayerwiseError(f"{owner}: {self.name}={value!r}: use {_or(self.choices)}")
        if self.type in (int, float) and not self._in_range(value):
            raise LayerwiseError(f"{owner}: {self.name}={value:g}: must be {self.describe_range()}")
        if self.check is not None:
            self.check(value, owner)
        return value

    def describe_range(self) -> str:
        """The valid values in words: ``in [0, 1)``, ``>= 1``, ``> 0 (or 0: off)``."""
        if self.type is bool:
            return "true or false"
        if self.choices:
            text = "one of " + ", ".join(self.choices)
        elif self.low is not None and self.high is not None:
            left, right = _BRACKETS[self.closed]
            text = f"in {left}{self.low}, {self.high}{right}"
        elif self.low is not None:
            text = (">= " if self.closed in ("both", "left") else "> ") + str(self.low)
        elif self.high is not None:
            text = ("<= " if self.closed in ("both", "right") else "< ") + str(self.high)
        else:
            return ""
        return text + (f" (or 0: {self.zero_means})" if self.zero_means else "")

    def describe(self) -> str:
        """One ``--list-layers`` line: ``name=default  doc [valid values]``."""
        valid = self.describe_range()
        return f"{self.name + '=' + str(self.default):<24} {self.doc}" + (f" [{valid}]" if valid else "")

    def constraints(self) -> list:
        """The scikit-learn ``_parameter_constraints`` entry for this option.

        A 0 sentinel is a value like the others for an estimator: ``zero_means``
        closes the interval at 0 (declared only where ``low`` is 0). An open
        end (``None``) is never closed, as scikit-learn requires.
        """
        from sklearn.utils._param_validation import Interval, StrOptions

        if self.type is bool:
            return ["boolean"]
        if self.choices:
            return [StrOptions(set(self.choices))]
        if self.type in (int, float):
            left = (self.closed in ("both", "left") or bool(self.zero_means)) and self.low is not None
            right = self.closed in ("both", "right") and self.high is not None
            closed = {(True, True): "both", (True, False): "left", (False, True): "right"}.get((left, right), "neither")
            return [Interval(Integral if self.type is int else Real, self.low, self.high, closed=closed)]
        return [self.type]

    # Machinery ---------------------------------------------------------------------
    def _coerce(self, value: Any, owner: str) -> Any:
        """Plain ``bool``/``int``/``float``/``str`` of ``value`` (numpy scalars included)."""
        is_bool = isinstance(value, (bool, np.bool_))
        accepted = {bool: is_bool, int: isinstance(value, Integral) and not is_bool,
                    float: isinstance(value, Real) and not is_bool, str: isinstance(value, str)}[self.type]
        if not accepted:
            raise LayerwiseError(f"{owner}: {self.name}={value!r} should be a {self.type.__name__} "
                                 f"(default {self.default})")
        return self.type(value)

    def _in_range(self, value) -> bool:
        if not math.isfinite(value):
            return False
        left_ok = self.low is None or (value >= self.low if self.closed in ("both", "left") else value > self.low)
        right_ok = self.high is None or (value <= self.high if self.closed in ("both", "right") else value < self.high)
        return left_ok and right_ok


def options_table(*options: Option) -> Dict[str, Option]:
    """``{name: option}`` in declaration order, refusing a name declared twice."""
    table = {}
    for option in options:
        if option.name in table:
            raise ValueError(f"option {option.name!r} is declared twice")
        table[option.name] = option
    return table


def validate_options(owner: str, declared: Dict[str, Option], given: Dict[str, Any]) -> Dict[str, Any]:
    """Every declared option's value (``given`` or the default), validated; unknown names refused."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise LayerwiseError(f"{owner}: unknown option {unknown[0]!r}: {owner} takes "
                             f"{', '.join(sorted(declared))} (see pretrain --list-layers)")
    return {name: option.validate(given.get(name, option.default), owner) for name, option in declared.items()}


def _or(words) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
