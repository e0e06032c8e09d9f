"""What a study refuses before anything trains or is written: data it cannot learn from, folders it would clobber.

Every check ends in one :class:`LayerwiseError` line that names the fix, and
runs before the first cell trains, so a refused study leaves nothing behind:

* :func:`check_study_data`: labels and a labeled test split; finite values in
  every split the study reads (training, test, and the unlabeled pool under
  ``semi``); a training split that is not constant (these two are
  pretraining's own checks, :func:`pretrain.training.divergence.check_input`);
  at least two classes. Whether every class has the labels a budget asks for
  is :func:`finetune.study.budget.sample_labels`'s check, run for every budget
  and seed before any cell.
* :func:`check_output_folder`: ``--save`` and ``--report`` follow
  ``pretrain``'s rule for ``-o``: a folder that already holds results is
  replaced only with ``overwrite=True``.
"""
from pathlib import Path
from typing import Iterable, Optional, Tuple

import numpy as np

from pretrain.core.errors import LayerwiseError
from pretrain.training.divergence import check_finite, check_input

from .budget import check_labeled

USE = "fine-tuning"
#: what marks a folder as holding fine-tuned models (``--save``: the folder itself, or one subfolder per model)
SAVED = ("classifier.pt", "*/classifier.pt")
#: what marks a folder as holding a report (``--report``, of a comparison or of ``--advise``)
REPORTED = ("results.json", "advice.json")


def check_study_data(dataset, semi: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """The labeled training split of ``dataset``, once every split the study reads is fit to learn from.

    ``semi``: the study also reads the unlabeled pool (``x_unlabeled``).
    """
    x_train, y_train = check_labeled(dataset)
    check_input(x_train, "the training split", "check that the right data was loaded", use=USE)
    check_finite(dataset.x_test, "the test split", use=USE)
    if semi and dataset.x_unlabeled is not None:
        check_finite(dataset.x_unlabeled, "the unlabeled pool", use=USE)
    check_classes(dataset, y_train)
    return x_train, y_train


def check_classes(dataset, y_train: np.ndarray) -> None:
    """Refuse a training split of fewer than two classes: there is nothing to tell apart."""
    present = np.unique(y_train)
    if len(present) < 2:
        names = [dataset.class_names[int(label)] for label in present]
        raise LayerwiseError(f"fine-tuning needs at least two classes, and the training split of '{dataset.spec}' "
                             f"has {len(present)} ({', '.join(map(str, names)) or 'none'}): use data with two or "
                             "more classes (a folder: one subfolder of images per class)")


def check_output_folder(folder, patterns: Iterable[str], what: str, overwrite: bool) -> Optional[Path]:
    """Refuse ``folder`` when it holds a file matching one of ``patterns`` (globs) and ``overwrite`` is False.

    ``what`` names the option (``save``, ``report_dir``) in the message; None passes.
    """
    if folder is None or overwrite:
        return None
    folder = Path(folder)
    held = next((path for pattern in patterns for path in sorted(folder.glob(pattern))), None)
    if held is not None:
        raise LayerwiseError(f"{what}={folder} already holds results ({held.relative_to(folder)}): "
                             "pass overwrite=True to replace them, or choose another folder")
    return folder
