"""Data in: the table of data specs, one reader per kind, image folders, the Dataset, and the
preprocessing saved with a stack.

May import :mod:`pretrain.core` only.
"""
from .dataset import Dataset
from .specs import DATA_ENV, DEFAULT_DATA_DIR, SPEC_KINDS, describe_specs, load_data, resolve_data

__all__ = ["DATA_ENV", "DEFAULT_DATA_DIR", "SPEC_KINDS", "Dataset", "describe_specs", "load_data", "resolve_data"]
