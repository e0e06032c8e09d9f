"""Tests for pretrain.sklearn: scikit-learn's own estimator checks, the drop-in BernoulliRBM, pipelines."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn import neural_network
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from pretrain.core.errors import LayerwiseError
from pretrain.layers import get_layer_class
from pretrain.sklearn import Autoencoder, BernoulliRBM, ConvAutoencoder, ConvRBM, GaussianRBM, StackedPretrainer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sklearn_pipeline.py"

# Reasons a scikit-learn check cannot pass, declared the way scikit-learn prescribes (strict xfail).
SCORE_SAMPLES_IS_RANDOM = ("score_samples flips one random unit per row, seeded by random_state, so a row's "
                           "score depends on its position; scikit-learn declares the same for its BernoulliRBM")
EXPECTED_FAILURES = {
    "BernoulliRBM": {"check_methods_sample_order_invariance": SCORE_SAMPLES_IS_RANDOM,
                     "check_methods_subset_invariance": SCORE_SAMPLES_IS_RANDOM},
}


def expected_failed_checks(estimator):
    return EXPECTED_FAILURES.get(type(estimator).__name__, {})


@parametrize_with_checks([BernoulliRBM(n_components=8, n_iter=2), GaussianRBM(n_components=8, n_iter=2),
                          Autoencoder(n_components=8, n_iter=2), StackedPretrainer(["rbm:8", "ae:4"], n_iter=2)],
                         expected_failed_checks=expected_failed_checks, xfail_strict=True)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    """Digits scaled to [0, 1] in float32 (as scikit-learn's RBM example), split 70/30."""
    X, y = load_digits(return_X_y=True)
    return train_test_split((X / 16.0).astype(np.float32), y, test_size=0.3, random_state=0)


def binary_data(dtype, sparse):
    X = (np.random.default_rng(0).random((40, 12)) < 0.3).astype(dtype)
    return sp.csr_matrix(X) if sparse else X


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True])
def test_bernoulli_rbm_has_scikit_learns_attributes_shapes_and_dtypes(dtype, sparse):
    X = binary_data(dtype, sparse)
    theirs = neural_network.BernoulliRBM(n_components=5, batch_size=10, n_iter=2, random_state=0).fit(X)
    ours = BernoulliRBM(n_components=5, batch_size=10, n_iter=2, random_state=0).fit(X)
    for attribute in ("components_", "intercept_hidden_", "intercept_visible_", "h_samples_"):
        expected, got = getattr(theirs, attribute), getattr(ours, attribute)
        assert (got.shape, got.dtype) == (expected.shape, expected.dtype), attribute
    for method in ("transform", "gibbs"):
        expected, got = getattr(theirs, method)(X), getattr(ours, method)(X)
        assert (got.shape, got.dtype) == (expected.shape, expected.dtype), method
    # scikit-learn's score_samples gives float64 for sparse float32 input; ours keeps the input's type throughout.
    scores = ours.score_samples(X)
    assert scores.shape == theirs.score_samples(X).shape and scores.dtype == dtype
    assert list(ours.get_feature_names_out()) == list(theirs.get_feature_names_out())


def test_bernoulli_rbm_transform_is_sigmoid_of_its_fitted_attributes(digits):
    X_train, X_test, _, _ = digits
    rbm = BernoulliRBM(n_components=16, n_iter=2, random_state=0).fit(X_train)
    expected = 1 / (1 + np.exp(-(X_test @ rbm.components_.T + rbm.intercept_hidden_)))
    np.testing.assert_allclose(rbm.transform(X_test), expected, rtol=1e-5)


def test_bernoulli_rbm_features_classify_digits_as_well_as_scikit_learns(digits):
    X_train, X_test, y_train, y_test = digits

    # Weakly regularised, as in scikit-learn's own RBM example (C=6000): with scikit-learn's algorithm,
    # which the drop-in follows, both RBMs measured 0.81-0.82 at C=1 and 0.89-0.90 at C=100.
    def accuracy(rbm):
        model = make_pipeline(rbm, LogisticRegression(C=100, max_iter=1000)).fit(X_train, y_train)
        return model.score(X_test, y_test)

    settings = dict(n_components=64, learning_rate=0.06, n_iter=10, random_state=0)
    ours, theirs = accuracy(BernoulliRBM(**settings)), accuracy(neural_network.BernoulliRBM(**settings))
    assert ours > 0.85  # chance is 0.1
    assert ours > theirs - 0.03


def test_pseudo_likelihood_prefers_digits_to_scrambled_digits(digits):
    X_train, X_test, _, _ = digits
    rbm = BernoulliRBM(n_components=32, learning_rate=0.06, n_iter=5, random_state=0).fit(X_train)
    scrambled = np.random.default_rng(0).permuted(X_test, axis=1)
    assert rbm.score_samples(X_test).mean() > rbm.score_samples(scrambled).mean() + 10


def test_partial_fit_learns_from_minibatches(digits):
    X_train, X_test, y_train, y_test = digits

    def accuracy(rbm):
        classifier = LogisticRegression(max_iter=500).fit(rbm.transform(X_train), y_train)
        return classifier.score(rbm.transform(X_test), y_test)

    rbm = BernoulliRBM(n_components=32, learning_rate=0.1, random_state=0)
    rbm.partial_fit(X_train[:10])
    before = accuracy(rbm)
    for _ in range(3):
        for start in range(0, len(X_train), 20):
            rbm.partial_fit(X_train[start:start + 20])
    assert accuracy(rbm) > before + 0.2
    with pytest.raises(ValueError, match="features"):
        rbm.partial_fit(X_train[:10, :20])


def test_fits_are_reproducible_and_leave_torch_random_state_alone(digits):
    X_train = digits[0]
    state = torch.get_rng_state()
    first = BernoulliRBM(n_components=8, n_iter=2, random_state=3).fit(X_train)
    second = BernoulliRBM(n_components=8, n_iter=2, random_state=3).fit(X_train)
    other = BernoulliRBM(n_components=8, n_iter=2, random_state=4).fit(X_train)
    first.gibbs(X_train[:5])
    first.score_samples(X_train[:5])
    assert torch.equal(torch.get_rng_state(), state)
    np.testing.assert_array_equal(first.components_, second.components_)
    assert not np.array_equal(first.components_, other.components_)


def test_gibbs_draws_a_fresh_sample_each_call(digits):
    rbm = BernoulliRBM(n_components=16, n_iter=2, random_state=0).fit(digits[0])
    v = digits[0][:50]
    first, second = rbm.gibbs(v), rbm.gibbs(v)
    assert first.dtype == bool and not np.array_equal(first, second)


@pytest.mark.parametrize("estimator_class", [GaussianRBM, Autoencoder, ConvAutoencoder, ConvRBM])
def test_every_layer_option_is_a_constructor_parameter(estimator_class):
    options = set(get_layer_class(estimator_class.kind).options)
    assert options <= set(estimator_class().get_params())


def test_gaussian_rbm_features_on_standardised_digits(digits):
    X_train, X_test, y_train, y_test = digits
    model = make_pipeline(StandardScaler(), GaussianRBM(n_components=64, learning_rate=0.05, n_iter=5, random_state=0),
                          LogisticRegression(max_iter=500)).fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.8


def test_gaussian_rbm_divergence_names_the_remedy(digits):
    unstandardised = digits[0] * 160
    with pytest.raises(LayerwiseError, match="StandardScaler"):
        GaussianRBM(n_components=16, learning_rate=10.0, n_iter=3, random_state=0).fit(unstandardised)


def test_autoencoder_picks_its_loss_from_the_input_range(digits):
    X_train = digits[0]
    assert Autoencoder(n_components=8, n_iter=1).fit(X_train).layer_.hparams["loss"] == "ce"
    assert Autoencoder(n_components=8, n_iter=1).fit(X_train - 0.5).layer_.hparams["loss"] == "mse"
    with pytest.raises(LayerwiseError, match="MinMaxScaler"):
        Autoencoder(n_components=8, n_iter=1, loss="ce").fit(X_train - 0.5)


def test_denoising_autoencoder_features_classify_digits(digits):
    X_train, X_test, y_train, y_test = digits
    model = make_pipeline(Autoencoder(n_components=64, learning_rate=0.01, n_iter=5, noise="mask:0.2", random_state=0),
                          LogisticRegression(max_iter=500)).fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.85


def test_stacked_pretrainer_in_a_grid_search(digits):
    X_train, X_test, y_train, y_test = digits
    pipeline = Pipeline([("stack", StackedPretrainer(n_iter=5, batch_size=10, random_state=0)),
                         ("classify", LogisticRegression(max_iter=500))])
    grid = {"stack__layers": [["rbm:48"], ["rbm:48", "ae:24"]]}
    search = GridSearchCV(pipeline, grid, cv=2).fit(X_train[:600], y_train[:600])
    assert search.best_estimator_.score(X_test, y_test) > 0.8
    stack = search.best_estimator_.named_steps["stack"]
    codes = stack.transform(X_test)
    assert codes.shape == (len(X_test), stack.stack_.n_outputs)
    np.testing.assert_allclose(codes, stack.stack_.transform(X_test), atol=1e-5)
    assert len(stack.stack_.info["history"]) == 5 * len(stack.stack_.layers)


def test_sklearn_pipeline_example_runs_with_tiny_settings():
    result = subprocess.run([sys.executable, str(EXAMPLE), "--quick"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^(.+?)\s+([01]\.\d{3})\s+(\d+\.\d\d)", result.stdout, flags=re.MULTILINE)
    assert [name.strip() for name, _, _ in rows] == [
        "logistic regression on raw pixels", "scikit-learn BernoulliRBM + logistic",
        "layerwise BernoulliRBM + logistic"]
    assert all(0 < float(f1) <= 1 for _, f1, _ in rows)


@pytest.mark.parametrize("batch_size, components, threads_in_fit", [(10, 100, 1), (100, 500, 2)])
def test_small_products_fit_on_one_thread_and_the_callers_threads_are_put_back(monkeypatch, batch_size, components,
                                                                               threads_in_fit):
    """Digits at batch 10 (64,000 multiply-adds a product) run on one thread; batch 100 with 500
    components (3.2 million) on the caller's two; either way the caller keeps its setting."""
    import pretrain.sklearn._base as base
    seen = []
    real_epoch = base.run_epoch
    monkeypatch.setattr(base, "run_epoch", lambda *a, **k: (seen.append(torch.get_num_threads()), real_epoch(*a, **k)))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = load_digits().data[:200] / 16
        BernoulliRBM(n_components=components, batch_size=batch_size, n_iter=2, random_state=0).fit(x)
        assert seen == [threads_in_fit] * 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
