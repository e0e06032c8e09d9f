"""The :class:`Dataset`: raw arrays as a data source gave them, and where they came from.

Nothing is scaled, resized or re-channelled here: that preprocessing is stored
with the pretrained stack, so the same raw arrays feed pretraining and
fine-tuning alike. :mod:`pretrain.data.specs` makes datasets from specs.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from pretrain.core.errors import LayerwiseError, UsageMistake


@dataclass
class Dataset:
    """Raw arrays as the source gave them (no scaling), with where they came from.

    Images are ``[N,H,W]`` (grayscale) or ``[N,H,W,C]`` (channels last); tabular data is
    ``[N,D]``. Labels are int64 class indices, or None for unlabeled data. ``spec`` is
    the data's identity (the spec it was loaded from, ``array`` for in-memory data) and
    ``split_seed`` the seed that drew its held-out test split (None when the data came
    with its own): together what a stack's provenance check compares.
    """

    spec: str
    x_train: np.ndarray
    y_train: Optional[np.ndarray]
    x_test: Optional[np.ndarray]
    y_test: Optional[np.ndarray]
    x_unlabeled: Optional[np.ndarray] = None
    classes: Optional[list] = None
    split_seed: Optional[int] = None

    def __post_init__(self):
        """Every split's examples are shaped as the training split's: a stack fits them all or none, so data
        whose test images are 6x6 beside 8x8 training images is refused as it loads, not blamed on a stack later.

        A usage mistake (exit 2): the data named on the command line is not one data set.
        """
        shape = self.x_train.shape[1:]
        for name, x in (("test", self.x_test), ("unlabeled", self.x_unlabeled)):
            if x is not None and x.shape[1:] != shape:
                raise UsageMistake(f"'{self.spec}': its {name} examples are {_dims(x.shape[1:])} but its training "
                                   f"examples {_dims(shape)}: give every split the same shape")

    @property
    def is_image(self) -> bool:
        """True for image data, False for tabular ``[N,D]`` data."""
        return self.x_train.ndim >= 3

    @property
    def image_shape(self) -> Optional[tuple]:
        """``(H, W, C)`` of one image (C=1 for grayscale), or None for tabular data."""
        if not self.is_image:
            return None
        h, w = self.x_train.shape[1:3]
        return (h, w, self.x_train.shape[3] if self.x_train.ndim == 4 else 1)

    @property
    def n_classes(self) -> int:
        """Number of classes: one more than the largest label (labels are 0..K-1)."""
        if self.y_train is None:
            raise LayerwiseError(f"data '{self.spec}' has no labels: use a folder with one "
                                 "subfolder per class, or an npz file with y")
        # The test labels count too, so a class missing from a small train split still fits.
        labels = [self.y_train] + ([self.y_test] if self.y_test is not None else [])
        return int(max(y.max() for y in labels)) + 1

    @property
    def class_names(self) -> list:
        """The classes in the data's own terms: folder names where it has them, else the label values."""
        return list(self.classes) if self.classes else list(range(self.n_classes))

    def pretraining_images(self) -> np.ndarray:
        """The examples unsupervised pretraining may see: train plus unlabeled, never test."""
        if self.x_unlabeled is None:
            return self.x_train
        return np.concatenate([self.x_train, self.x_unlabeled])

    def example_images(self, n: int = 10) -> Optional[np.ndarray]:
        """``n`` raw test images (the first of each class when labels allow) for pictures; None without a test split."""
        if self.x_test is None:
            return None
        if self.y_test is None:
            return self.x_test[:n]
        classes, first = np.unique(self.y_test, return_index=True)
        chosen = first[:n] if len(classes) >= n else np.arange(min(n, len(self.x_test)))
        return self.x_test[np.sort(chosen)]


def _dims(shape: tuple) -> str:
    """``(6, 6)`` -> ``6x6``; ``(32, 32, 3)`` -> ``32x32x3``."""
    return "x".join(map(str, shape))
