"""Measures in nats: exact and AIS log Z, log p(v), the DBN variational bound, and scoring a saved stack.

May import :mod:`pretrain.core` and :mod:`pretrain.layers`.
"""
from .partition import (BINARISATION, DEFAULT_BETAS, ais_log_partition, beta_schedule, binarise, check_energy_layer,
                        exact_log_partition, log_likelihood)

__all__ = ["BINARISATION", "DEFAULT_BETAS", "ais_log_partition", "beta_schedule", "binarise", "check_energy_layer",
           "exact_log_partition", "log_likelihood"]
