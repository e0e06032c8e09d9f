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
    """Colour rows (3 x 6 x 5, C-order) unflatten as image_shape says; transform is the body's output."""
    images = torch.rand(20, 3, 6, 5, generator=torch.Generator().manual_seed(0))
    model = estimator_class(n_components=4, kernel=3, n_iter=1, image_shape=(3, 6, 5), random_state=0)
    codes = model.fit(images.reshape(20, -1).numpy()).transform(images.reshape(20, -1).numpy())
    with torch.no_grad():
        expected = model.layer_.to_modules().eval()(images).flatten(1).numpy()
    np.testing.assert_allclose(codes, expected, rtol=1e-5, atol=1e-6)
    assert model.components_.shape == (4, 3 * 3 * 3)


@pytest.mark.parametrize("image_shape", [(1, 7, 9), (1, 8), (1, "8", 8), (1, 8.0, 8)])
def test_an_image_shape_that_does_not_fit_the_rows_names_the_fix(image_shape, digits):
    with pytest.raises(LayerwiseError, match=r"image_shape=.*give \(channels, height, width\) whose product is 64"):
        ConvRBM(n_components=4, image_shape=image_shape).fit(digits[0])
