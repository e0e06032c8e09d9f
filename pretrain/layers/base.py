"""The layer contract: :class:`Layer`, the base class of every kind (the registry: :mod:`.registry`; the
hand-written gradients: :mod:`.gradients`; what fine-tuning is handed: :mod:`.plain`).

A layer is an ``nn.Module`` with

* ``forward(v)``: the deterministic code passed to the layer above (mean-field
  hidden probabilities for RBMs, the encoder output for autoencoders);
* ``loss(v)``: a scalar whose gradient is the layer's learning rule, so one
  trainer with any torch optimizer trains every kind of layer;
* ``accumulate_gradients(v)``: what the trainer calls per minibatch: add that
  gradient to the parameters' ``.grad`` and return the loss, detached. By
  default autograd of ``loss``; layers whose gradient has a closed form (the
  RBMs) write it directly, without building a graph, and the same optimizer steps;
  ``foldable_parameters()`` names those whose gradient can go straight into the
  optimizer's buffer (``into``, from :meth:`pretrain.training.sgd.SGD.fold`);
* ``decode(h)``: the mean reconstruction of the input from codes, so
  ``reconstruct(v) = decode(forward(v))`` gives the one-step mean-field
  reconstruction whose error is reported in training and evaluation alike.

Fine-tuning (the ``finetune`` package) sees a layer only through two methods, and needs nothing else of
it: a new kind that defines them is fine-tuned, with every schedule and method, without an edit there.

* ``to_modules()``: plain torch modules (``nn.Linear`` or ``nn.Conv2d`` + activation
  [+ pooling]) holding a copy of the weights (:func:`pretrain.layers.plain.holding`): the layer's
  body group, trained by every schedule;
* ``decoder()``: the :class:`pretrain.layers.plain.Decoder` of its codes, trained beside the body
  under ``semi=reconstruction`` (and built only then): ``decoder(h, encoder)`` is ``decode(h)``,
  reading tied weights from ``encoder``, the first ``Linear`` or ``Conv2d`` of ``to_modules()``
  (:func:`pretrain.layers.plain.encoder_of`), so that a tied decoder follows the encoder as it is
  fine-tuned. A kind whose codes have no such decoder (k-means' triangle code, pooled patch
  features) says so: its ``decoder()`` raises :meth:`Layer.no_decoder`, one line naming the kind.

A layer sees inputs of ``input_shape`` and passes up codes of ``output_shape``:
``(n_visible,)`` and ``(n_hidden,)`` for dense kinds, ``(C, H, W)`` and
``(filters, H', W')`` for convolutional ones (``convolutional = True``), whose
codes are feature maps ``[N, C, H, W]``; a dense layer above them sees them
flattened.

New kinds register themselves with :func:`pretrain.layers.registry.register_layer` (one file per kind)
and declare their hyperparameters once as :class:`pretrain.layers.options.Option` values; the
constructor validates them, so the Python API refuses what the command line refuses.
"""
import math
from abc import ABC, abstractmethod
from numbers import Integral
from typing import Any, ClassVar, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import LayerwiseError
from .options import Option, validate_options
from .plain import Decoder


class Layer(nn.Module, ABC):
    """Base class of every layer kind; see the module docstring for the contract."""

    kind: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: "unit" when the layer models inputs in [0, 1], "real" for standardised inputs.
    input_range: ClassVar[str] = "unit"
    #: "sgd" (with the layer's momentum) or "adam".
    optimizer: ClassVar[str] = "sgd"
    default_lr: ClassVar[float] = 0.1
    #: the kind's hyperparameters, declared once (see :mod:`pretrain.layers.options`).
    options: ClassVar[Dict[str, Option]] = {}
    #: True for kinds that see images ``[N, C, H, W]`` (and pass feature maps up).
    convolutional: ClassVar[bool] = False
    #: False for kinds whose training is their data-dependent start alone (the trainer runs no epochs).
    learns: ClassVar[bool] = True
    #: False for kinds whose ``decode`` reads the codes of their training rows, not the codes they pass up
    #: (patch layers pool over regions): no reconstructions through the stack (:mod:`pretrain.plots`).
    decodes_codes: ClassVar[bool] = True

    def __init__(self, n_visible: int, n_hidden: int, **options):
        super().__init__()
        for name, size in (("n_visible", n_visible), ("n_hidden", n_hidden)):
            if isinstance(size, bool) or not isinstance(size, Integral) or size < 1:
                raise LayerwiseError(f"{self.kind}: {name}={size!r}: must be an int >= 1")
        self.n_visible = int(n_visible)
        self.n_hidden = int(n_hidden)
        self.hparams = validate_options(self.kind, self.options, options)

    @classmethod
    def for_input(cls, input_shape: Tuple[int, ...], units: int, input_range: str, **options) -> "Layer":
        """Build a layer of ``units`` fed inputs of ``input_shape`` (flattened) whose range is ``input_range``.

        Kinds whose loss depends on the range override this.
        """
        return cls(math.prod(input_shape), units, **options)

    @classmethod
    def check_options(cls, options: Dict[str, Any]) -> None:
        """Refuse, in one line, options that are valid one by one but not together (none here)."""

    @classmethod
    def expected_input_range(cls, options: Dict[str, Any]) -> str:
        """The input range a first layer of this kind with ``options`` wants the data scaled to."""
        return cls.input_range

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Layer":
        """The layer of :meth:`config` output (before its state is loaded)."""
        return cls(config["n_visible"], config["n_hidden"], **config["options"])

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """The shape of one input row."""
        return (self.n_visible,)

    @property
    def output_shape(self) -> Tuple[int, ...]:
        """The shape of one code passed up."""
        return (self.n_hidden,)

    @property
    def row_bytes(self) -> int:
        """Bytes of the widest tensor one input row makes in the layer (its input or its hidden units):
        what sizes a chunk of inference (:func:`pretrain.core.batches.rows_within`)."""
        return max(self.n_visible, self.n_hidden) * next(self.parameters()).element_size()

    # The contract -------------------------------------------------------------
    @abstractmethod
    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """Deterministic code of ``v`` passed to the layer above."""

    @abstractmethod
    def loss(self, v: torch.Tensor) -> torch.Tensor:
        """Scalar whose gradient is the layer's learning rule."""

    def foldable_parameters(self) -> List[nn.Parameter]:
        """Parameters whose gradient :meth:`accumulate_gradients` can add straight into an optimizer's buffer
        (its ``into``): none by default."""
        return []

    def accumulate_gradients(self, v: torch.Tensor, into: Optional[Dict] = None,
                             with_loss: bool = True) -> Optional[torch.Tensor]:
        """Add the gradient of :meth:`loss` on the batch ``v`` to the parameters' ``.grad``; return the loss, detached.

        This default is autograd (``loss.backward()``); the RBMs override it
        with their closed-form gradient. Either way ``.grad`` accumulates as
        after ``backward``, so the trainer's optimizer, its state and
        checkpoints are the same for every kind. ``into`` maps some of
        :meth:`foldable_parameters` to the optimizer's ``(buffer, scale)``: their
        gradient times ``scale`` goes there instead (:func:`add_product_gradient`);
        a layer that names none is never given any. ``with_loss=False``: the
        caller needs no loss, and a layer that can skip computing it returns None.
        """
        with torch.enable_grad():  # the trainer's epoch runs without gradients
            loss = self.loss(v)
            loss.backward()
        return loss.detach()

    @abstractmethod
    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """Mean reconstruction of the input from codes ``h`` (top-down pass)."""

    @abstractmethod
    def to_modules(self) -> nn.Sequential:
        """Plain torch modules with a copy of the weights, mapping inputs to codes: the layer's body group in
        fine-tuning; its first ``Linear`` or ``Conv2d`` is the encoder a tied :meth:`decoder` reads."""

    @abstractmethod
    def decoder(self) -> Decoder:
        """A fresh :class:`pretrain.layers.plain.Decoder` of this layer's codes (``semi=reconstruction``):
        ``decoder(h, encoder_of(to_modules()))`` equals :meth:`decode` of ``h``; or, for a kind without
        one, :meth:`no_decoder` raised."""

    def no_decoder(self, why: str) -> LayerwiseError:
        """The one-line error a kind's :meth:`decoder` raises when its codes have no decoder, saying ``why``."""
        return LayerwiseError(f"{self.kind} layers have no decoder of their codes: {why}")

    # Shared behaviour ---------------------------------------------------------
    @property
    def code_range(self) -> str:
        """Range of the codes this layer passes up: "unit" for sigmoid codes, "real" otherwise."""
        return "unit"

    def init_from_data(self, v: torch.Tensor) -> None:
        """Optional data-dependent initialisation from a sample of the training rows (:meth:`training_rows`)."""

    def training_rows(self, x: torch.Tensor, fit: bool = False) -> torch.Tensor:
        """The rows the learning rule and the reconstruction monitors see of inputs ``x``: ``x`` itself here.

        Patch layers sample patches of the images ``x`` instead, normalised and
        whitened; ``fit=True`` (the training inputs) first fits what the layer
        derives from them (its whitening). :meth:`loss`, :meth:`reconstruct` and
        :meth:`decode` are about these rows; :meth:`forward` reads the inputs.
        """
        return x

    def picture_weights(self) -> torch.Tensor:
        """The weights into each unit as ``plots/filters.png`` draws them: ``[units, C, k, k]`` filters, or
        ``[units, inputs]`` rows; by default those of the first plain module (:meth:`to_modules`)."""
        return self.to_modules()[0].weight.detach()

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

