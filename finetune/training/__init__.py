"""Training one cell: schedules and stages, freezing, the converged linear probe, the unlabeled pool
(pseudo-labels, reconstruction) and the loop.

May import :mod:`finetune.networks` and :mod:`pretrain`.
"""
