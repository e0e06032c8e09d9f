"""Labels for new data from a saved classifier, as a CSV file.

One row per example: its index, the predicted label (in the data's own
terms, see :attr:`finetune.networks.classifier.Classifier.classes_`), the true label
where the data has one, and the probability of every class.
"""
import csv
import io
from pathlib import Path

import numpy as np

from pretrain.core.io import save_text
from pretrain.training.divergence import check_finite

from .networks.classifier import load_classifier


def rows_to_label(dataset):
    """The examples to label: the test split where the data has one, else all of it; with their labels or None."""
    if dataset.x_test is not None:
        return dataset.x_test, dataset.y_test
    return dataset.x_train, dataset.y_train


def write_predictions(classifier_dir, dataset, path) -> Path:
    """Label ``dataset`` with the classifier saved in ``classifier_dir``; write the CSV to ``path``.

    Data holding NaN or infinity is refused before anything is written (a row of NaN probabilities says nothing).
    """
    model = load_classifier(classifier_dir)
    x, y = rows_to_label(dataset)
    check_finite(x, "the data to label", use="predicting")
    probabilities = model.predict_proba(x)
    predicted = model.classes_[probabilities.argmax(1)]
    names = np.asarray(dataset.class_names) if y is not None and dataset.y_train is not None else None
    header = ["index", "prediction"] + (["label"] if names is not None else []) + \
        [f"p_{name}" for name in model.classes_]
    lines = []
    for index in range(len(x)):
        label = [names[y[index]]] if names is not None else []
        lines.append([index, predicted[index], *label, *(f"{p:.6f}" for p in probabilities[index])])
    return save_text(_csv_text(header, lines), path)


def _csv_text(header, lines) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(lines)
    return out.getvalue()
