"""The study: label budgets, the cells and their executor (--jobs, torchrun), rows and the run's
config, the report with paired gaps, and the measured advisor (LogME).

May import :mod:`finetune.training`, :mod:`finetune.networks` and :mod:`pretrain`.
"""
