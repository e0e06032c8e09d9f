"""The convolutional layers as scikit-learn transformers of flattened images: the contract, real features."""
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from pretrain.core.errors import LayerwiseError
from pretrain.sklearn import ConvAutoencoder, ConvRBM


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split((X / 16).astype(np.float32), y, test_size=0.3, random_state=0, stratify=y)


@pytest.mark.filterwarnings("ignore:.*are not square images")  # the checks' rows of 2, 3, 5 ... features
@parametrize_with_checks([ConvAutoencoder(n_components=4, kernel=3, n_iter=2),
                          ConvRBM(n_components=4, kernel=3, n_iter=2)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator,least", [
    (ConvAutoencoder(n_components=16, kernel=3, n_iter=5, random_state=0), 0.95),  # measured 0.989 (seeds 0, 1)
    (ConvRBM(n_components=16, kernel=3, n_iter=5, momentum=0.9, random_state=0), 0.9),  # measured 0.941, 0.941
])
def test_pooled_maps_classify_held_out_digits(estimator, least, digits):
    """A pipeline of the layer, a scaler and a logistic regression on the 8x8 digits read as images (64 = 8 x 8).
    (Their untrained filters score 0.99 here too: README, convolutional stacks with few labels.)"""
    X_train, X_test, y_train, y_test = digits
    model = make_pipeline(estimator, StandardScaler(), LogisticRegression(max_iter=3000)).fit(X_train, y_train)
    assert model[0].transform(X_test[:2]).shape == (2, 16 * 4 * 4)
    assert model.score(X_test, y_test) > least


@pytest.mark.parametrize("estimator_class", [ConvAutoencoder, ConvRBM])
def test_transform_is_the_layers_cnn_body_on_the_unflattened_images(estimator_class):
    """Colour rows (6 x 5 x 3, channels last as numpy holds images) unflatten as image_shape says; transform is
    the body's output on the same images channels first."""
    images = torch.rand(20, 6, 5, 3, generator=torch.Generator().manual_seed(0))
    rows = images.reshape(20, -1).numpy()
    model = estimator_class(n_components=4, kernel=3, n_iter=1, image_shape=(6, 5, 3), random_state=0)
    codes = model.fit(rows).transform(rows)
    with torch.no_grad():
        expected = model.layer_.to_modules().eval()(images.permute(0, 3, 1, 2)).flatten(1).numpy()
    np.testing.assert_allclose(codes, expected, rtol=1e-5, atol=1e-6)
    assert model.components_.shape == (4, 3 * 3 * 3) and model.layer_.input_shape == (3, 6, 5)


def test_image_shape_is_channels_last_as_on_the_command_line(digits):
    """(8, 8, 1): the digits as 8 x 8 grey images, as ``pretrain`` reads them, not 8 channels of 8 x 1."""
    model = ConvRBM(n_components=2, kernel=3, n_iter=1, image_shape=(8, 8, 1)).fit(digits[0][:50])
    assert model.layer_.input_shape == (1, 8, 8)


def test_an_image_shape_changed_after_fit_is_one_clear_error(digits):
    model = ConvAutoencoder(n_components=2, kernel=3, n_iter=1, image_shape=(8, 8, 1)).fit(digits[0][:50])
    model.set_params(image_shape=(4, 16, 1))
    with pytest.raises(LayerwiseError, match=r"^ConvAutoencoder was fitted on images of image_shape=\(8, 8, 1\), and "
                                             r"image_shape is now \(4, 16, 1\): fit again after set_params"):
        model.transform(digits[0][:5])
    assert model.fit(digits[0][:50]).transform(digits[0][:5]).shape == (5, 2 * 2 * 8)


def test_rows_that_are_not_square_are_read_as_signals_with_a_warning():
    rows = np.random.default_rng(0).random((20, 10))
    with pytest.warns(UserWarning, match="ConvRBM: rows of 10 features are not square images: read as 1 x 10 "
                                         "signals; give image_shape="):
        model = ConvRBM(n_components=2, kernel=3, n_iter=1).fit(rows)
    assert model.layer_.input_shape == (1, 1, 10)
    assert ConvRBM.__doc__.count("1 x n`` signal") == 1 and "image_shape`` ``(height, width, channels)" in ConvRBM.__doc__


@pytest.mark.parametrize("image_shape", [(7, 9, 1), (8, 1), ("8", 8, 1), (8.0, 8, 1)])
def test_an_image_shape_that_does_not_fit_the_rows_names_the_fix(image_shape, digits):
    with pytest.raises(LayerwiseError, match=r"image_shape=.*give \(height, width, channels\) whose product is 64"):
        ConvRBM(n_components=4, image_shape=image_shape).fit(digits[0])
