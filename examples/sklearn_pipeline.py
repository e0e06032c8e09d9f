"""RBM features for digit classification: scikit-learn's BernoulliRBM and layerwise's, side by side.

scikit-learn's classic example (``plot_rbm_logistic_classification``): the 8x8
digits, each also shifted by one pixel in four directions (5x the data), scaled
to [0, 1]; a BernoulliRBM (100 units, learning rate 0.06, 10 iterations) learns
features and a logistic regression (C=6000) classifies them, against a logistic
regression (C=100) on the raw pixels. ``pretrain.sklearn.BernoulliRBM`` takes
the place of scikit-learn's without any other change.

"fit s" times the whole pipeline (mostly the logistic regression, whose time
depends on the features it is given); "RBM fit s" the RBM alone. On 8x8 images
in minibatches of 10, torch's fixed cost per minibatch outweighs the arithmetic
and scikit-learn's numpy RBM fits faster; on 28x28 images layerwise's is faster.

    python examples/sklearn_pipeline.py            # the full example, a few minutes on a CPU
    python examples/sklearn_pipeline.py --quick    # tiny settings, seconds
"""
import argparse
import time
import warnings

import numpy as np
from scipy.ndimage import convolve
from sklearn import neural_network
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import minmax_scale

from pretrain.sklearn import BernoulliRBM

# One-pixel shifts: up, left, right, down.
SHIFTS = [np.array(kernel) for kernel in (
    [[0, 1, 0], [0, 0, 0], [0, 0, 0]], [[0, 0, 0], [1, 0, 0], [0, 0, 0]],
    [[0, 0, 0], [0, 0, 1], [0, 0, 0]], [[0, 0, 0], [0, 0, 0], [0, 1, 0]])]


def nudge_dataset(X, y):
    """The images plus four copies shifted by one pixel; labels repeated to match."""
    def shifted(kernel):
        return np.stack([convolve(image.reshape(8, 8), kernel, mode="constant").ravel() for image in X])
    return np.concatenate([X] + [shifted(kernel) for kernel in SHIFTS]), np.concatenate([y] * 5)


def digits(n_images=None):
    """Nudged digits scaled to [0, 1] (float32, as scikit-learn's example), split 80/20."""
    X, y = load_digits(return_X_y=True)
    X, y = nudge_dataset(X[:n_images].astype(np.float32), y[:n_images])
    return train_test_split(minmax_scale(X), y, test_size=0.2, random_state=0)


def fit_and_score(model, X_train, X_test, y_train, y_test):
    """Macro-averaged F1 on the test split and the seconds ``fit`` took."""
    started = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - started
    return f1_score(y_test, model.predict(X_test), average="macro"), seconds


def rbm_fit_seconds(rbm, X_train):
    """Seconds to fit a fresh copy of ``rbm`` alone: the step in which the two pipelines differ."""
    started = time.perf_counter()
    clone(rbm).fit(X_train)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings for a smoke test")
    args = parser.parse_args()
    n_images, n_components, n_iter, max_iter = (300, 16, 2, 100) if args.quick else (None, 100, 10, 1000)
    if args.quick:  # so few iterations cannot converge; the smoke test checks the plumbing
        warnings.filterwarnings("ignore", category=ConvergenceWarning)

    X_train, X_test, y_train, y_test = digits(n_images)
    rbm_settings = dict(n_components=n_components, learning_rate=0.06, n_iter=n_iter, random_state=0)
    models = {
        "logistic regression on raw pixels": LogisticRegression(C=100.0, max_iter=max_iter),
        "scikit-learn BernoulliRBM + logistic": make_pipeline(
            neural_network.BernoulliRBM(**rbm_settings), LogisticRegression(C=6000, max_iter=max_iter)),
        "layerwise BernoulliRBM + logistic": make_pipeline(
            BernoulliRBM(**rbm_settings), LogisticRegression(C=6000, max_iter=max_iter)),
    }
    print(f"{len(X_train)} training and {len(X_test)} test images (8x8, nudged)")
    print(f"{'model':<38} {'F1 (macro)':>10} {'fit s':>7} {'RBM fit s':>10}")
    for name, model in models.items():
        f1, seconds = fit_and_score(model, X_train, X_test, y_train, y_test)
        rbm_seconds = f"{rbm_fit_seconds(model[0], X_train):.2f}" if isinstance(model, Pipeline) else "-"
        print(f"{name:<38} {f1:>10.3f} {seconds:>7.2f} {rbm_seconds:>10}")


if __name__ == "__main__":
    main()
