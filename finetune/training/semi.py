"""Semi-supervised fine-tuning: the unlabeled pool joins every optimizer step (``semi=...``).

The pool is the data pretraining may see, :meth:`pretrain.data.dataset.Dataset.pretraining_images`
(the training split without its labels, plus any unlabeled split; never the
test split). Each step draws ``batch_size`` of its rows with replacement from
a generator seeded by the cell's seed and preprocesses just those rows with
the body's preprocessing, so no cell preprocesses the whole pool.
With ``x`` a labeled batch, ``u`` an unlabeled one and ``t`` the stage's
optimizer step, a step minimises::

    CE(f(x), y) + w(t) * U(u)

* ``pseudo-label`` (Lee, *Pseudo-Label*, ICML 2013 workshop): ``U(u) =
  CE(f(u), argmax f(u))``, the targets recomputed every step by the current
  model with dropout off (no gradient through them). The weight ramps as
  Lee's ``alpha(t)``: 0 until ``T1``, then linearly up to ``alpha_f`` at
  ``T2``, then ``alpha_f``. Lee used ``alpha_f = 3``, ``T1 = 100``, ``T2 =
  600`` *epochs* of 60,000 MNIST images; here a stage on 10 labels per class
  is a few hundred steps, so ``T1, T2 = RAMP`` *steps*, and such a stage
  takes at least ``T2 + min_steps`` steps (``min_steps`` at full weight).
  Dropout (probability ``DROPOUT``) on the output of every body group that
  trains and on the features the head sees, for labeled and unlabeled rows
  alike; labeled and unlabeled rows go through the model in one batch, so
  the head's BatchNorm sees both. A ``linear`` head on a frozen body is
  first fitted by the converged probe (:mod:`finetune.training.probe`, which cannot
  take pseudo-labels), then trained on from there by Adam with pseudo-labels;
  early stopping counts the probe's state, so the validation slice keeps the
  better of the two. (On digits with few labels it still scored below the
  probe under ``none``, since the probe then fits without the validation
  rows; without early stopping the random control's head collapsed onto one
  class. Pseudo-labels pay where the body trains. Measured:
  ``examples/benchmarks/design_notes.md``.)
* ``reconstruction`` (in the spirit of Ranzato & Szummer, *Semi-supervised
  learning of compact document representations with deep networks*, ICML
  2008): ``U(u)`` is the sum over the body groups that train of each layer's
  reconstruction error of its own input (its layer's decoder: :meth:`pretrain.layers.base.Layer.decoder`), the
  pretraining objective in its mean-field form, at a constant weight ``w``
  (the decoders are already trained, so nothing needs a ramp). The decoders'
  visible biases (and untied matrices) train at the top body group's rate.
  It needs decoders and body groups that train: a stack or its ``random:``
  control (whose decoders are drawn afresh), under ``two-stage``, ``full``
  or ``gradual``.

* ``consistency`` (FixMatch, Sohn et al., *FixMatch: simplifying semi-supervised learning with
  consistency and confidence*, NeurIPS 2020): each unlabeled image is seen twice, weakly perturbed
  (the ``--augment`` kind, ``shift`` when none is asked for) and strongly perturbed
  (:meth:`finetune.training.augment.Augment.strong`); the model's prediction on the weak view, in eval
  mode and without gradient, is the target of the strong view where its confidence reaches
  ``THRESHOLD``: ``U(u) = mean(1[max p(weak(u)) >= tau] * CE(f(strong(u)), argmax p(weak(u))))``,
  at Sohn's constant weight ``lambda_u = 1`` and ``tau = 0.95`` (the threshold does what the ramp does
  for pseudo-labels). Sohn drew 7 unlabeled images per labeled one; here a step draws
  ``batch_size`` of each, a fraction of a step's cost on CPUs. Images only.

A stage of any method runs ``T2 + min_steps`` steps. One that trains
body groups keeps its last weights, without early stopping: with one or two
validation labels per class early stopping kept the state the stage started
from and the unlabeled term never counted; ``two-stage`` and ``gradual``
still keep their head stage when the fine-tuned model scores no higher on the
validation slice (:mod:`finetune.training.train`).

``DEFAULT_WEIGHTS`` gives each method's ``w`` when none is given, chosen by
mean test accuracy on digits with few labels, two-stage, an RBM stack
(measured: ``examples/benchmarks/design_notes.md``): pseudo-labels and
reconstruction both beat none at their weight, and pseudo-labels did better
at ``w = 1`` than at Lee's ``alpha_f = 3``, which confirms its own mistakes on
a pool of 1,437 images.
"""
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pretrain.core.errors import LayerwiseError
from pretrain.layers.plain import encoder_of

from .schedule import SEMI_METHODS

#: the unsupervised term's final weight per method when ``semi_weight`` is not given (see the module docstring)
DEFAULT_WEIGHTS = {"pseudo-label": 1.0, "reconstruction": 3.0, "consistency": 1.0}
#: ``(T1, T2)``: optimizer steps of a stage where the pseudo-label weight starts rising and where it is full
RAMP = (100, 600)
#: dropout probability in the body (and on the head's input) under pseudo-labels
DROPOUT = 0.2
#: confidence of the weak view's prediction from which ``consistency`` makes it the strong view's target
THRESHOLD = 0.95


@dataclass(frozen=True)
class SemiSettings:
    """The method, its final weight, the pseudo-label ramp ``(T1, T2)`` in steps, and the dropout probability."""

    method: str = "none"
    weight: float = 0.0
    ramp: Tuple[int, int] = RAMP
    dropout: float = DROPOUT

    def weight_at(self, step: int) -> float:
        """``w(t)``: Lee's ramp for pseudo-labels, the constant ``weight`` for reconstruction."""
        if self.method != "pseudo-label":
            return self.weight
        start, end = self.ramp
        if step < start:
            return 0.0
        return self.weight * min(1.0, (step - start) / max(end - start, 1))


def semi_settings(method: str, weight: Optional[float] = None, ramp: Tuple[int, int] = RAMP,
                  dropout: float = DROPOUT) -> SemiSettings:
    """Checked settings; ``weight`` None takes the method's default (``DEFAULT_WEIGHTS``)."""
    if method not in SEMI_METHODS:
        raise LayerwiseError(f"semi={method!r}: use one of {', '.join(SEMI_METHODS)}")
    weight = DEFAULT_WEIGHTS.get(method, 0.0) if weight is None else float(weight)
    if not (np.isfinite(weight) and weight >= 0) or not 0 <= ramp[0] <= ramp[1] or not 0 <= dropout < 1:
        raise LayerwiseError(f"semi_weight={weight}, semi_ramp={tuple(ramp)}, semi_dropout={dropout}: the weight must "
                             f"be finite and >= 0, the ramp 0 <= T1 <= T2 steps, the dropout in [0, 1)")
    return SemiSettings(method, weight, (int(ramp[0]), int(ramp[1])), float(dropout))


class UnlabeledPool:
    """Rows of the unlabeled pool, drawn with replacement by a seeded generator and preprocessed per batch."""

    def __init__(self, images: np.ndarray, preprocess: Callable[[np.ndarray], torch.Tensor], batch_size: int,
                 seed: int):
        if not len(images):
            raise LayerwiseError("semi: the data has no training images to use as the unlabeled pool")
        self.images = images
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def indices(self) -> np.ndarray:
        """The pool rows of the next batch."""
        return torch.randint(len(self.images), (self.batch_size,), generator=self.generator).numpy()

    def draw(self, device: torch.device) -> torch.Tensor:
        """The next unlabeled batch, preprocessed, on ``device``."""
        return self.preprocess(self.images[self.indices()]).to(device)


class SemiTerm:
    """The loss of one optimizer step of a stage: the labeled cross-entropy plus ``w(t)`` times the unlabeled term."""

    def __init__(self, settings: SemiSettings, pool: UnlabeledPool, decoders: Optional[List[nn.Module]] = None,
                 weak: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        self.settings = settings
        self.pool = pool
        self.decoders = nn.ModuleList(decoders or [])
        #: consistency's weak perturbation (an :class:`~finetune.training.augment.Augment`) and its strong one
        self.weak, self.strong = weak, weak.strong() if weak is not None else None

    @property
    def name(self) -> str:
        return self.settings.method

    def min_steps(self, min_steps: int) -> int:
        """The fewest steps of a stage: ``min_steps`` past the ramp's end (for either method)."""
        return self.settings.ramp[1] + min_steps

    def param_groups(self, model, start: int, rate: float) -> List[dict]:
        """The decoders of the groups that train (their biases and untied matrices), at ``rate``."""
        params = [p for decoder in list(self.decoders)[start:len(model.body.groups)] for p in decoder.parameters()]
        return [{"params": params, "lr": rate, "name": "decoders"}] if params else []

    def loss(self, model, start: int, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        """The step's loss for labeled inputs ``x`` (outputs of the frozen groups below ``start``) and labels ``y``."""
        weight = self.settings.weight_at(step)
        if weight == 0:  # before the ramp: no unlabeled batch is drawn
            forward = dropout_forward if self.name == "pseudo-label" else plain_forward
            return F.cross_entropy(forward(model, x, start, self.settings.dropout), y)
        u = self.pool.draw(x.device)
        if self.name == "consistency":
            return self.consistency_loss(model, start, x, y, u, weight)
        with torch.no_grad():
            u = model.body.forward_range(u, 0, start)
        if self.name == "pseudo-label":
            return self.pseudo_label_loss(model, start, x, y, u, weight)
        supervised = F.cross_entropy(plain_forward(model, x, start), y)
        return supervised + weight * self.reconstruction_error(model, start, u)

    def pseudo_label_loss(self, model, start, x, y, u, weight) -> torch.Tensor:
        """Lee's loss: labeled and unlabeled rows in one batch, the unlabeled ones' targets the model's own argmax."""
        model.eval()
        with torch.no_grad():
            targets = plain_forward(model, u, start).argmax(1)
        model.train()
        logits = dropout_forward(model, torch.cat([x, u]), start, self.settings.dropout)
        return F.cross_entropy(logits[:len(x)], y) + weight * F.cross_entropy(logits[len(x):], targets)

    def consistency_loss(self, model, start, x, y, u, weight) -> torch.Tensor:
        """FixMatch's loss: the weak view's confident predictions are the targets of the strong view."""
        with torch.no_grad():
            weak = model.body.forward_range(self.weak(u), 0, start)
            strong = model.body.forward_range(self.strong(u), 0, start)
            model.eval()
            confidence, targets = F.softmax(plain_forward(model, weak, start), 1).max(1)
            model.train()
        logits = plain_forward(model, torch.cat([x, strong]), start)
        unlabeled = F.cross_entropy(logits[len(x):], targets, reduction="none") * (confidence >= THRESHOLD)
        return F.cross_entropy(logits[:len(x)], y) + weight * unlabeled.mean()

    def reconstruction_error(self, model, start: int, u: torch.Tensor) -> torch.Tensor:
        """Sum over the groups from ``start`` up of each layer's error reconstructing its own input."""
        total = u.new_zeros(())
        for index in range(start, len(model.body.groups)):
            group = model.body.groups[index]
            h = group(u)
            total = total + self.decoders[index].error(h, encoder_of(group), u.detach())
            u = h
        return total


def plain_forward(model, x: torch.Tensor, start: int, p: float = 0.0) -> torch.Tensor:
    """Logits of ``x``, the output of the groups below ``start``."""
    return model.head(model.body.forward_range(x, start))


def dropout_forward(model, x: torch.Tensor, start: int, p: float) -> torch.Tensor:
    """Logits with dropout on the output of each group from ``start`` up (or on the frozen features fed to the head)."""
    body = model.body
    if start == len(body.groups):
        x = F.dropout(x, p, model.training)
    for index in range(start, len(body.groups)):
        x = F.dropout(body.forward_range(x, index, index + 1), p, model.training)
    return model.head(x)
