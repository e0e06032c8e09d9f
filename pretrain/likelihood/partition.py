"""How good is an RBM: its log-likelihood in nats, with log Z exact (small layers) or estimated by AIS.

An RBM defines ``p(v) = exp(-F(v)) / Z`` with ``Z = sum_{v,h} exp(-E(v, h))``, so
``log p(v) = -F(v) - log Z`` (:func:`log_likelihood`). ``Z`` sums over
``2^min(n_visible, n_hidden)`` terms once one layer of units is summed out:

* over visible states: ``log Z = logsumexp_v [b.v + sum_j softplus(c_j + W_j v)]``;
* over hidden states: ``log Z = logsumexp_h [c.h + sum_i softplus(b_i + (W^T h)_i)]``;
* ``grbm``: the Gaussian integral is closed-form, so hidden states are summed:
  ``log Z = logsumexp_h [c.h + sum_i (a_i b_i / s_i + a_i^2 / 2)] + sum_i log(sqrt(2 pi) s_i)``,
  ``a = W^T h``; ``log p(v)`` is then a density of the (standardised) inputs.

:func:`exact_log_partition` does that for up to 25 units; larger layers are
estimated by annealed importance sampling (:func:`ais_log_partition`; Neal,
*Annealed importance sampling*, 2001; Salakhutdinov & Murray, *On the
quantitative analysis of deep belief networks*, ICML 2008).
"""
import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import LayerwiseError
from ..layers.energy import EnergyLayer

#: the most units :func:`exact_log_partition` enumerates (2^25 states).
MAX_ENUMERATED = 25
#: states per block of the enumeration.
BLOCK = 1 << 14
#: the default schedule: 0 -> 0.5 in steps of 1e-3, 0.5 -> 0.9 in 1e-4, 0.9 -> 1 in 1e-5 (14,501 values).
DEFAULT_BETAS = np.concatenate([np.linspace(0, 0.5, 500, endpoint=False),
                                np.linspace(0.5, 0.9, 4000, endpoint=False), np.linspace(0.9, 1, 10001)])
#: AIS clamps ``beta x`` at ``-SIGMOID_FLOOR`` before the sigmoid: ``sigmoid(-80) ~ 2e-35`` is still a normal
#: float, whereas subnormal ones slow every later pass several times; a Bernoulli draw from a float32
#: uniform (resolution 2^-24) cannot tell the two probabilities apart, and the weights change by < 1e-34.
SIGMOID_FLOOR = 80.0
#: pixels with ``x > THRESHOLD`` are 1 (:func:`binarise`).
THRESHOLD = 0.5
BINARISATION = f"pixels in [0, 1] after the stack's preprocessing thresholded at {THRESHOLD} (x > {THRESHOLD} -> 1)"


def binarise(x: torch.Tensor) -> torch.Tensor:
    """Inputs in [0, 1] as binary vectors: ``1`` where ``x > 0.5``, else ``0`` (deterministic, no seed)."""
    return (x > THRESHOLD).to(x.dtype)


def check_energy_layer(layer) -> None:
    """Only RBMs (``rbm``, ``grbm``) have a likelihood to compute."""
    kind = getattr(layer, "kind", layer)
    if kind == "crbm":
        raise LayerwiseError("log-likelihood of a convolutional RBM is not computed here (its log Z couples every "
                             "position): --score scores a stack whose first layer is an rbm or grbm")
    if not isinstance(layer, EnergyLayer) or kind not in ("rbm", "grbm"):
        raise LayerwiseError(f"log-likelihood needs an rbm or grbm layer, not {kind!r}")


def parameters64(layer: EnergyLayer):
    """``W, b, c`` and the visible scale ``s`` as float64 copies (enumeration sums many terms)."""
    return [t.detach().double() for t in (layer.weight, layer.visible_bias, layer.hidden_bias,
                                          layer.visible_scale().expand(layer.n_visible))]


# Exact log Z ---------------------------------------------------------------------
def exact_log_partition(layer: EnergyLayer) -> float:
    """``log Z`` by enumerating the smaller layer of units (hidden units for ``grbm``), up to 25 of them."""
    check_energy_layer(layer)
    if layer.kind == "grbm" or layer.n_hidden <= layer.n_visible:
        small, over = layer.n_hidden, log_partition_over_hidden
    else:
        small, over = layer.n_visible, log_partition_over_visible
    if small > MAX_ENUMERATED:
        raise LayerwiseError(f"exact log Z of a {layer.kind} {layer.n_visible}x{layer.n_hidden} sums 2^{small} "
                             f"states (at most 2^{MAX_ENUMERATED}): estimate it with ais_log_partition(layer)")
    return over(layer)


@torch.no_grad()
def log_partition_over_visible(layer: EnergyLayer) -> float:
    """``logsumexp_v [b.v + sum_j softplus(c_j + W_j v)]`` over all binary ``v`` (``rbm`` only)."""
    weight, vbias, hbias, _ = parameters64(layer)
    return blockwise_logsumexp(layer.n_visible, lambda v: v @ vbias + F.softplus(v @ weight.t() + hbias).sum(1),
                               weight.device)


@torch.no_grad()
def log_partition_over_hidden(layer: EnergyLayer) -> float:
    """``logsumexp_h [c.h + ...]`` over all binary ``h``; visible units summed (``rbm``) or integrated (``grbm``)."""
    weight, vbias, hbias, scale = parameters64(layer)
    if layer.kind == "rbm":
        def term(h):
            return h @ hbias + F.softplus(h @ weight + vbias).sum(1)
        constant = 0.0
    else:
        def term(h):
            a = h @ weight
            return h @ hbias + (a * (vbias / scale) + a.pow(2) / 2).sum(1)
        constant = float(scale.log().sum()) + layer.n_visible * 0.5 * math.log(2 * math.pi)
    return blockwise_logsumexp(layer.n_hidden, term, weight.device) + constant


def blockwise_logsumexp(n_units: int, term, device) -> float:
    """``logsumexp`` of ``term(states)`` over all ``2^n_units`` binary states, ``BLOCK`` states at a time."""
    bits = torch.arange(n_units, device=device)
    parts = []
    for start in range(0, 1 << n_units, BLOCK):
        codes = torch.arange(start, min(start + BLOCK, 1 << n_units), device=device)
        parts.append(torch.logsumexp(term(((codes[:, None] >> bits) & 1).double()), 0))
    return float(torch.logsumexp(torch.stack(parts), 0))


# Annealed importance sampling ----------------------------------------------------
class BinaryPath:
    """Tempered ``rbm``: ``p_beta(v) ∝ exp(((1 - beta) a + beta b).v) prod_j (1 + exp(beta (c_j + W_j v)))``.

    ``a`` are the base-rate biases: at ``beta = 0`` the visible units are
    independent with ``p(v_i = 1) = sigmoid(a_i)`` (and each hidden unit adds a
    factor 2), at ``beta = 1`` it is the RBM. The Gibbs step at ``beta`` samples
    ``h ~ sigmoid(beta (c + W v))`` then ``v ~ sigmoid((1 - beta) a + beta (b + W^T h))``.
    """

    def __init__(self, layer: EnergyLayer, base_bias: torch.Tensor):
        self.layer, self.base_bias = layer, base_bias
        self.bias_gap = layer.visible_bias.detach() - base_bias
        self.log_z_base = float(F.softplus(base_bias.double()).sum()) + layer.n_hidden * math.log(2)

    def sample_base(self, runs: int, generator: torch.Generator) -> torch.Tensor:
        return draw(torch.sigmoid(self.base_bias).expand(runs, -1), generator)

    def visible_gap(self, v: torch.Tensor, step: float) -> torch.Tensor:
        """``log p*_beta(v) - log p*_{beta - step}(v)`` of the visible biases: ``step (b - a).v``."""
        return step * (v @ self.bias_gap)

    def sample_visible(self, h: torch.Tensor, beta: float, generator: torch.Generator) -> torch.Tensor:
        logits = torch.addmm(self.base_bias + beta * self.bias_gap, h, self.layer.weight.detach(), alpha=beta)
        return draw(logits.sigmoid_(), generator)


class GaussianPath:
    """Tempered ``grbm``: ``p_beta(v) ∝ exp(-|(v - b) / s|^2 / 2) prod_j (1 + exp(beta (c_j + W_j (v / s))))``.

    The base (``beta = 0``) is the layer's own visible Gaussians ``N(b, s^2)``
    without the hidden units' coupling; ``v | h ~ N(b + beta s W^T h, s^2)``.
    """

    def __init__(self, layer: EnergyLayer):
        self.layer = layer
        self.scale = layer.visible_scale().detach().expand(layer.n_visible)
        self.log_z_base = (float(self.scale.double().log().sum()) + layer.n_visible * 0.5 * math.log(2 * math.pi)
                           + layer.n_hidden * math.log(2))

    def sample_base(self, runs: int, generator: torch.Generator) -> torch.Tensor:
        return self.sample_visible(self.scale.new_zeros(runs, self.layer.n_hidden), 0.0, generator)

    def visible_gap(self, v: torch.Tensor, step: float) -> torch.Tensor:
        return v.new_zeros(len(v))

    def sample_visible(self, h: torch.Tensor, beta: float, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(h.shape[0], self.layer.n_visible, generator=generator, device=h.device, dtype=h.dtype)
        return self.layer.visible_bias.detach() + self.scale * noise.add_(h @ self.layer.weight.detach(), alpha=beta)


def draw(p: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Binary sample of probabilities ``p`` from ``generator`` (the global random state is left alone).

    ``ceil(p - u)`` is 1 exactly when ``u < p`` (``p - u`` is in ``(-1, 1)``), in
    two float passes: faster on CPU than ``(u < p).to(float)``.
    """
    return p.sub(torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype)).ceil_()


def log1p(y: torch.Tensor) -> torch.Tensor:
    """``log(1 + y)`` to about one ulp: ``log(u) - ((u - 1) - y) / u`` with ``u = fl(1 + y)``.

    The second term undoes the rounding of ``1 + y`` to first order (Goldberg,
    *What every computer scientist should know about floating-point
    arithmetic*, 1991, s. 4); faster on CPU than ``torch.log1p``.
    """
    u = y + 1
    return u.log().sub_((u - 1).sub_(y).div_(u))


def base_rate_bias(layer: EnergyLayer, base_data: Optional[torch.Tensor]) -> torch.Tensor:
    """Logits of the smoothed pixel means ``(sum_n v_ni + 1) / (N + 2)`` (Laplace's rule); zeros without data."""
    weight = layer.weight.detach()
    if base_data is None:
        return weight.new_zeros(layer.n_visible)
    p = (base_data.to(weight).sum(0) + 1) / (len(base_data) + 2)
    return torch.log(p) - torch.log1p(-p)


def beta_schedule(betas: Union[None, int, Sequence[float]]) -> np.ndarray:
    """Inverse temperatures from 0 to 1: the default, ``n`` values spaced like it, or a given sequence."""
    if betas is None:
        return DEFAULT_BETAS
    if isinstance(betas, (int, np.integer)) and not isinstance(betas, bool):
        if betas < 2:
            raise LayerwiseError(f"betas={betas}: AIS needs at least 2 inverse temperatures, e.g. betas=1000")
        positions = np.linspace(0, len(DEFAULT_BETAS) - 1, int(betas))
        return np.interp(positions, np.arange(len(DEFAULT_BETAS)), DEFAULT_BETAS)
    schedule = np.asarray(betas, dtype=np.float64)
    if schedule.ndim != 1 or len(schedule) < 2 or schedule[0] != 0 or schedule[-1] != 1 \
            or not (np.diff(schedule) > 0).all():
        raise LayerwiseError("betas must rise strictly from 0 to 1, e.g. numpy.linspace(0, 1, 1000), "
                             "or be a count such as betas=1000")
    return schedule


@torch.no_grad()
def ais_log_weights(path, schedule: np.ndarray, runs: int, generator: torch.Generator) -> torch.Tensor:
    """Log importance weights of ``runs`` chains annealed together, as one batch, through ``schedule``.

    ``log w = sum_k [log p*_k(v_k) - log p*_{k-1}(v_k)]``, ``v_k`` drawn by the
    Gibbs step at ``beta_{k-1}`` from ``v_{k-1}`` (``v_1`` from the base). The
    hidden terms' difference ``softplus(beta x) - softplus(beta' x)`` is computed
    as ``-log1p(sigmoid(beta x) expm1(-(beta - beta') x))``: exact to float
    precision however small the step, and it reuses ``sigmoid(beta x)``, which
    the Gibbs step at ``beta`` samples ``h`` from. (It loses precision only where
    a step times a pre-activation exceeds about 15 while ``sigmoid(beta x)``
    rounds to 1: a schedule far too coarse for AIS anyway.)
    """
    v = path.sample_base(runs, generator)
    log_w = torch.zeros(runs, dtype=torch.float64, device=v.device)
    steps = np.diff(schedule)
    for beta, step in zip(schedule[1:].tolist(), steps.tolist()):
        pre = path.layer.hidden_preactivation(v)
        h = (pre * beta).clamp_(min=-SIGMOID_FLOOR).sigmoid_()  # no subnormal floats: they are slow
        hidden_gap = log1p(torch.expm1(pre.mul_(-step)).mul_(h)).sum(1).neg_()
        log_w += hidden_gap + path.visible_gap(v, step)
        if beta < 1:
            v = path.sample_visible(draw(h, generator), beta, generator)
    return log_w


def log_mean_bounds(log_w: torch.Tensor) -> Tuple[float, float, float]:
    """``log mean(w)`` and ``log(mean(w) -/+ 3 sd(w) / sqrt(n))`` from ``log w``, without leaving log space.

    With ``m = max log w``: ``mean(w) = e^m mean(e^{log w - m})``, likewise the
    standard error. The lower bound is ``-inf`` when three standard errors reach the mean.
    """
    top = float(log_w.max())
    scaled = torch.exp(log_w.double() - top)
    mean, error = float(scaled.mean()), 3 * float(scaled.std()) / math.sqrt(len(scaled))
    low = top + math.log(mean - error) if mean > error else -math.inf
    return top + math.log(mean), low, top + math.log(mean + error)


def ais_log_partition(layer: EnergyLayer, runs: int = 100, betas: Union[None, int, Sequence[float]] = None,
                      base_data: Optional[torch.Tensor] = None, seed: int = 0) -> Tuple[float, float, float]:
    """AIS estimate of ``log Z`` with Salakhutdinov & Murray's bounds: ``(log_z, log_z_low, log_z_high)``.

    ``runs`` chains anneal together from a base model to the RBM (see
    :class:`BinaryPath`; ``base_data``, the training inputs, sets the ``rbm``
    base rates, else the base is uniform; a ``grbm`` anneals from its own
    visible Gaussians, :class:`GaussianPath`, and ignores ``base_data``).
    ``betas``: None for the default schedule (14,501 values dense near 1), an
    int for that many spaced alike, or a rising sequence from 0 to 1. ``Z_hat =
    Z_base mean(w)``; the bounds are ``log(Z_hat -/+ 3 sigma_hat)``, ``sigma_hat``
    the standard error of the mean weight (the lower one ``-inf`` when
    ``3 sigma_hat >= Z_hat``). Randomness comes from a ``torch.Generator`` seeded
    with ``seed`` on the layer's device: the same seed, the same estimate.
    """
    check_energy_layer(layer)
    if runs < 2:
        raise LayerwiseError(f"runs={runs}: AIS bounds need at least 2 runs, e.g. runs=100")
    schedule = beta_schedule(betas)
    path = BinaryPath(layer, base_rate_bias(layer, base_data)) if layer.kind == "rbm" else GaussianPath(layer)
    generator = torch.Generator(device=layer.weight.device).manual_seed(seed)
    log_z, low, high = log_mean_bounds(ais_log_weights(path, schedule, runs, generator))
    return log_z + path.log_z_base, low + path.log_z_base, high + path.log_z_base


@torch.no_grad()
def log_likelihood(layer: EnergyLayer, x: torch.Tensor, log_z: float) -> torch.Tensor:
    """Per-row ``log p(v) = -F(v) - log Z`` in nats; an ``rbm`` needs binary ``x`` (see :func:`binarise`)."""
    check_energy_layer(layer)
    x = x.to(layer.weight)
    if layer.kind == "rbm" and bool(((x != 0) & (x != 1)).any()):
        raise LayerwiseError("log p(v) of an rbm is defined for binary v: binarise the inputs first, "
                             "e.g. pretrain.likelihood.partition.binarise(x)")
    return -layer.free_energy(x) - log_z
