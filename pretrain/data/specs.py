"""Data specs, resolved once at the command edge: the one table of kinds, and :func:`load_data`.

:func:`load_data` turns a spec string (``digits``, ``mnist``, ``idx:DIR``, ``npz:FILE``,
``npy:FILE``, ``folder:DIR`` ...) into a :class:`~pretrain.data.dataset.Dataset` of raw numpy arrays;
:func:`resolve_data` is what the Python API's entry points call on whatever they are
given (a spec, a Dataset, an array). The readers of each kind live in
:mod:`pretrain.data.readers`; the list of kinds is :data:`SPEC_KINDS`, from which help
texts and error messages derive.
"""
import os
from typing import Optional

import numpy as np

from pretrain.data.dataset import Dataset  # noqa: F401  (re-exported: pretrain.data.Dataset)
from pretrain.core.errors import LayerwiseError

from . import readers

#: environment variable naming where torchvision datasets live, and its default.
DATA_ENV = "LAYERWISE_DATA"
DEFAULT_DATA_DIR = "~/.layerwise/data"

#: The one table of data-spec kinds: (form, help). Help texts, errors and the README derive from it.
SPEC_KINDS = (
    ("digits", "scikit-learn's 8x8 digits (1,797 images, built in)"),
    (", ".join(readers.TORCHVISION), f"torchvision datasets under --data-dir (${DATA_ENV}), downloaded when missing"),
    ("idx:DIR", "MNIST-layout IDX files (train-images-idx3-ubyte ..., .gz ok)"),
    ("npz:FILE", "arrays x (and y), or x_train, y_train, x_test, y_test"),
    ("npy:FILE", "one array [N, ...] (uint8 or float), memory-mapped: unlabeled data bigger than RAM"),
    ("folder:DIR", "images; one subfolder per class gives labels"),
)


def describe_specs() -> str:
    """Help text listing the accepted data specs, one per line (derived from :data:`SPEC_KINDS`)."""
    return "\n".join(f"{form:<18}{text}" if len(form) < 18 else f"{form}\n{'':<18}{text}"
                     for form, text in SPEC_KINDS)


def spec_forms() -> str:
    """``digits, mnist, ..., npz:FILE or folder:DIR``: the accepted forms in one phrase."""
    forms = [form for form, _ in SPEC_KINDS]
    return ", ".join(forms[:-1]) + " or " + forms[-1]


def resolve_data(data, data_dir: Optional[str] = None, split_seed: int = 0) -> "Dataset":
    """What the Python API's entry points accept as data, resolved once into a :class:`Dataset`.

    A spec string is loaded (:func:`load_data`), a :class:`Dataset` passes
    through, and an array ``[N, ...]`` becomes unlabeled data named ``array``.
    """
    if isinstance(data, Dataset):
        return data
    if isinstance(data, str):
        return load_data(data, data_dir=data_dir, split_seed=split_seed)
    x = np.asarray(data)
    if x.ndim < 2 or x.dtype.kind not in "iufb":
        raise LayerwiseError(f"data of shape {x.shape} and dtype {x.dtype}: give a data spec "
                             f"({spec_forms()}), a Dataset, or a numeric array [N, ...]")
    return Dataset("array", x, None, None, None)


def load_data(spec: str, data_dir: Optional[str] = None, split_seed: int = 0,
              download: bool = True, test_fraction: float = 0.2) -> Dataset:
    """Load the data named by ``spec`` (see :func:`describe_specs`).

    Labeled data that comes without a test split gets a stratified held-out split of
    ``test_fraction``; the same ``split_seed`` always holds out the same examples.
    """
    if not 0 < test_fraction < 1:
        raise LayerwiseError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    name = spec.strip().lower()
    kind, _, arg = spec.partition(":")
    path = os.path.expanduser(arg)
    if name == "digits":
        from sklearn.datasets import load_digits
        digits = load_digits()
        return readers.with_test_split(spec, digits.images, digits.target.astype(np.int64),
                                None, split_seed, test_fraction)
    if name in readers.TORCHVISION:
        return readers.load_torchvision(spec, name, _data_root(data_dir), download)
    if kind == "idx" and arg:
        return readers.load_idx(spec, path)
    if kind == "npz" and arg:
        return readers.load_npz(spec, path, split_seed, test_fraction)
    if kind == "npy" and arg:
        return readers.load_npy(spec, path)
    if kind == "folder" and arg:
        return readers.load_folder(spec, path, split_seed, test_fraction)
    raise LayerwiseError(f"unknown data '{spec}': use {spec_forms()}{_path_hint(spec)}")


def _path_hint(spec: str) -> str:
    """For a bare path, the spec that was probably meant."""
    path = os.path.expanduser(spec)
    if spec.lower().endswith(".npz"):
        return f" (for this file write npz:{spec})"
    if spec.lower().endswith(".npy"):
        return f" (for this file write npy:{spec})"
    if os.path.isdir(path):
        return f" (for this folder write folder:{spec} or idx:{spec})"
    return ""


def _data_root(data_dir: Optional[str]) -> str:
    """Where torchvision datasets live: the argument, else $LAYERWISE_DATA, else ~/.layerwise/data."""
    root = data_dir or os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR
    return os.path.expanduser(root)
