"""Where users see log-likelihoods: the training monitor, and the scores ``pretrain --score`` records.

The math is in :mod:`pretrain.likelihood.partition` (log Z, AIS, ``log p(v)``) and
:mod:`pretrain.likelihood.dbn_bound`; here it meets data: an ``rbm`` is scored on inputs
binarised by :data:`~pretrain.likelihood.partition.BINARISATION`, with ``log Z`` the larger
of two AIS estimates (:func:`cautious_log_partition`), and each score is a plain
dict for ``stack.json``.
"""
import math
import time
from typing import Optional, Sequence, Union

import torch

from .dbn_bound import stack_lower_bound
from ..layers.energy import EnergyLayer
from .partition import (BINARISATION, ais_log_partition, beta_schedule, binarise, check_energy_layer,
                         log_likelihood)

#: the training monitor's quick AIS: chains and inverse temperatures.
MONITOR_RUNS, MONITOR_BETAS = 100, 1000


def scoring_inputs(layer: EnergyLayer, x: torch.Tensor) -> torch.Tensor:
    """What ``log p(v)`` is taken of: binarised inputs for an ``rbm`` (:func:`binarise`), as they are for a ``grbm``."""
    return binarise(x) if layer.kind == "rbm" else x


@torch.no_grad()
def likelihood_monitor(layer, train: torch.Tensor, val: torch.Tensor, runs: int = MONITOR_RUNS,
                       betas: int = MONITOR_BETAS) -> dict:
    """Per-epoch figures of a quick AIS (RBM layers only, else ``{}``): ``log Z`` and mean ``log p`` of both slices.

    The base rates come from the binarised training rows; with few betas the
    estimate of ``log Z`` is biased low, so the log-likelihoods read high:
    compare epochs with each other, and score the final stack with the full schedule.
    """
    if not isinstance(layer, EnergyLayer):
        return {}
    train = scoring_inputs(layer, train)
    log_z, _, _ = ais_log_partition(layer, runs=runs, betas=betas, base_data=train if layer.kind == "rbm" else None)
    metrics = {"ais_log_z": log_z, "log_likelihood_train": float(log_likelihood(layer, train, log_z).mean())}
    if len(val):
        metrics["log_likelihood_val"] = float(log_likelihood(layer, scoring_inputs(layer, val), log_z).mean())
    return metrics


def cautious_log_partition(layer: EnergyLayer, runs: int = 100, betas: Union[None, int, Sequence[float]] = None,
                           base_data: Optional[torch.Tensor] = None, seed: int = 0):
    """The larger of two AIS estimates of ``log Z``: from ``base_data``'s base rates and from the uniform base.

    Each estimate errs low on average, and exceeds ``log Z`` by ``t`` nats with
    probability at most ``e^-t`` (Markov's inequality: ``E[Z_hat] = Z``), so the
    larger is the safer. They can differ by several nats: chains annealed from
    the data's base rates miss modes of the RBM far from the data (CD-1 makes
    such modes), and then ``log Z`` reads low and the log-likelihood high. Returns
    ``(log_z, log_z_low, log_z_high, {base: (log_z, log_z_low, log_z_high)})``;
    a ``grbm`` has one base, its own visible Gaussians.
    """
    bases = {"uniform": None} if base_data is None else {"base_rates": base_data, "uniform": None}
    if layer.kind == "grbm":
        bases = {"gaussian": None}
    estimates = {name: ais_log_partition(layer, runs, betas, data, seed) for name, data in bases.items()}
    best = max(estimates, key=lambda name: estimates[name][0])
    return (*estimates[best], estimates)


def finite(value: float) -> Optional[float]:
    """``value``, or None (JSON has no infinity) for ``-inf``."""
    return value if math.isfinite(value) else None


def score_layer(layer: EnergyLayer, x_test: torch.Tensor, x_train: torch.Tensor, runs: int = 100,
                betas: Union[None, int, Sequence[float]] = None, seed: int = 0) -> dict:
    """Mean test ``log p(v)`` of a bottom RBM with bounds from AIS's, as the plain record ``stack.json`` keeps.

    ``x_test``/``x_train`` are preprocessed inputs; for an ``rbm`` both are
    binarised (:data:`BINARISATION`) and ``log Z`` is :func:`cautious_log_partition`'s,
    with the training rows' base rates. ``log p`` bounds: ``mean(-F) - log Z_high``
    and ``mean(-F) - log Z_low`` (None, unbounded, when ``log Z_low`` is ``-inf``).
    """
    check_energy_layer(layer)
    x_test, x_train = scoring_inputs(layer, x_test), scoring_inputs(layer, x_train)
    started = time.perf_counter()
    log_z, low, high, by_base = cautious_log_partition(layer, runs, betas, x_train, seed)
    seconds = time.perf_counter() - started
    nats = float(log_likelihood(layer, x_test, 0.0).mean())
    return {"nats": nats - log_z, "low": nats - high, "high": finite(nats - low),
            "log_z": log_z, "log_z_low": finite(low), "log_z_high": high,
            "log_z_by_base": {name: [z, finite(lo), hi] for name, (z, lo, hi) in by_base.items()},
            "ais_runs": runs, "ais_betas": len(beta_schedule(betas)), "seed": seed, "ais_seconds": seconds,
            "n_test": len(x_test), "inputs": BINARISATION if layer.kind == "rbm" else "standardised, not binarised"}


@torch.no_grad()
def score_stack_bound(layers: Sequence, x_test: torch.Tensor, x_train: torch.Tensor, runs: int = 100,
                      betas=None, seed: int = 0, samples: int = 10) -> dict:
    """Mean test bound of a stack of RBMs (preprocessed inputs, binarised here), as ``stack.json`` keeps it.

    The top RBM's ``log Z`` is :func:`cautious_log_partition`'s (base rates
    from the mean-field codes of the training rows); the bound's own bounds carry AIS's on ``log Z``.
    """
    codes = binarise(x_train)
    for layer in layers[:-1]:
        codes = layer(codes)
    log_z, low, high, _ = cautious_log_partition(layers[-1], runs, betas, codes, seed)
    nats = float(stack_lower_bound(layers, binarise(x_test), 0.0, samples, seed).mean())
    return {"nats": nats - log_z, "low": nats - high, "high": finite(nats - low), "log_z_top": log_z,
            "layers": len(layers), "samples": samples, "ais_runs": runs, "ais_betas": len(beta_schedule(betas)),
            "seed": seed, "n_test": len(x_test), "inputs": BINARISATION}
