"""Label budgets: stratified, seeded samples of the labeled training split.

Fine-tuning sees only the sampled labels. A budget is either a number of
labels per class (``--labels-per-class 1,10,100``, or ``all``: every labeled
training example) or a total (``--labels 500``), spread over the classes in
proportion to their frequency. The same seed always draws the same sample,
and every source and schedule of one seed gets that same sample, so their
comparison is paired.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from pretrain.core.errors import LayerwiseError

#: Early stopping needs a validation slice; below this many labels per class it would starve training.
MIN_PER_CLASS_FOR_VALIDATION = 5
VALIDATION_FRACTION = 0.2
DEFAULT_LABELS_PER_CLASS = "1,10,100"


@dataclass(frozen=True)
class Budget:
    """``per_class`` labels of every class, or ``total`` labels stratified; neither: all of them."""

    per_class: Optional[int] = None
    total: Optional[int] = None

    @property
    def label(self) -> str:
        """How the user wrote it: ``10``, ``all`` or ``500 total``."""
        if self.per_class is not None:
            return str(self.per_class)
        return "all" if self.total is None else f"{self.total} total"

    def labels_per_class(self, n_classes: int) -> Union[int, float, str]:
        """The value reported as ``labels_per_class``: the count, ``all``, or total / classes."""
        if self.per_class is not None:
            return self.per_class
        return "all" if self.total is None else round(self.total / n_classes, 3)


def parse_budgets(labels_per_class: Union[str, Sequence, None] = None,
                  labels: Union[str, Sequence, None] = None) -> List[Budget]:
    """Budgets from ``"1,10,all"`` (per class) and/or ``"100,1000"`` (totals); lists of ints work too.

    With neither, ``DEFAULT_LABELS_PER_CLASS``.
    """
    if labels_per_class is None and labels is None:
        labels_per_class = DEFAULT_LABELS_PER_CLASS
    budgets = [Budget(per_class=None if v == "all" else v)
               for v in _parse_counts(labels_per_class, "labels_per_class", allow_all=True)]
    budgets += [Budget(total=v) for v in _parse_counts(labels, "labels", allow_all=False)]
    return list(dict.fromkeys(budgets))


def _parse_counts(value, option: str, allow_all: bool) -> list:
    """``"1,10,all"`` or ``[1, 10, "all"]`` -> ``[1, 10, "all"]``, checked."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    if not items:
        raise LayerwiseError(f"{option}: give at least one count")
    counts = []
    for item in items:
        text = str(item).strip().lower()
        if allow_all and text == "all":
            counts.append("all")
        elif text.isdigit() and int(text) > 0:
            counts.append(int(text))
        else:
            example = "1,10,100,all" if allow_all else "100,1000"
            raise LayerwiseError(f"{option}={value if isinstance(value, str) else ','.join(map(str, items))}: "
                                 f"use comma-separated positive counts, e.g. {example}")
    return counts


def check_labeled(dataset) -> Tuple[np.ndarray, np.ndarray]:
    """The labeled training split; a one-line error when the data has none."""
    if dataset.y_train is None:
        raise LayerwiseError(f"fine-tuning needs labels, and data '{dataset.spec}' has none: use labeled data "
                             "(a folder with one subfolder per class, or an npz file with y)")
    if dataset.x_test is None or dataset.y_test is None or len(dataset.y_test) == 0:
        raise LayerwiseError(f"data '{dataset.spec}' has no labeled test split to report accuracy on")
    return dataset.x_train, dataset.y_train


def sample_labels(y: np.ndarray, budget: Budget, seed: int, classes: Optional[list] = None) -> np.ndarray:
    """Sorted indices into ``y`` of a stratified sample of ``budget``, drawn with ``seed``."""
    y = np.asarray(y)
    counts = np.bincount(y)
    rng = np.random.default_rng(seed)
    if budget.per_class is not None:
        smallest = int(np.argmin(counts))
        if budget.per_class > counts[smallest]:
            name = classes[smallest] if classes else smallest
            raise LayerwiseError(
                f"labels_per_class={budget.per_class}: class {name} has only {counts[smallest]} labeled "
                f"training examples; use at most {counts[smallest]} or `all`")
        chosen = [rng.choice(np.flatnonzero(y == c), budget.per_class, replace=False) for c in range(len(counts))]
        return np.sort(np.concatenate(chosen))
    if budget.total is None or budget.total == len(y):
        return np.arange(len(y))
    n_classes = int(np.count_nonzero(counts))
    if budget.total > len(y):
        raise LayerwiseError(f"labels={budget.total}: there are only {len(y)} labeled training examples; "
                             f"use at most {len(y)}")
    if budget.total < n_classes:
        raise LayerwiseError(f"labels={budget.total}: a stratified sample needs at least one label per class "
                             f"({n_classes} classes)")
    from sklearn.model_selection import train_test_split
    chosen, _ = train_test_split(np.arange(len(y)), train_size=budget.total, stratify=y,
                                 random_state=int(rng.integers(2**31)))
    return np.sort(chosen)


def validation_split(y: np.ndarray, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Indices (fit, validation) into a labeled sample ``y``: a stratified 20% slice (at least 1 per class).

    The slice is empty, and training runs a fixed number of epochs, when some
    class has fewer than ``MIN_PER_CLASS_FOR_VALIDATION`` labels.
    """
    y = np.asarray(y)
    counts = np.bincount(y)
    present = np.flatnonzero(counts)
    if counts[present].min() < MIN_PER_CLASS_FOR_VALIDATION:
        return np.arange(len(y)), np.arange(0)
    rng = np.random.default_rng(seed)
    held_out = [rng.choice(np.flatnonzero(y == c), max(1, round(VALIDATION_FRACTION * counts[c])), replace=False)
                for c in present]
    val = np.sort(np.concatenate(held_out))
    return np.setdiff1d(np.arange(len(y)), val), val
