"""The option declarations: ranges refused in one line everywhere, and everything derived from them."""
import inspect

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from sklearn import neural_network
from sklearn.datasets import load_digits
from sklearn.utils._param_validation import InvalidParameterError

from pretrain.core.errors import LayerwiseError
from pretrain.layers import (TRAINER_OPTIONS, LayerSpec, build_layer, describe_layers, get_layer_class,
                             list_layers)
from pretrain.sklearn import Autoencoder, BernoulliRBM, GaussianRBM

ESTIMATORS = [BernoulliRBM, GaussianRBM, Autoencoder]


@pytest.mark.parametrize("text, message", [
    ("rbm:10,momentum=5", "momentum=5: must be in [0, 1)"),
    ("rbm:10,momentum=1", "momentum=1: must be in [0, 1)"),
    ("rbm:10,k=0", "k=0: must be in [1, 1000]"),
    ("rbm:10,epochs=-2", "epochs=-2: must be >= 1 (or 0: the command's --epochs)"),
    ("rbm:10,lr=-1", "lr=-1: must be > 0 (or 0: "),
    ("rbm:10,lr=nan", "lr=nan: must be > 0"),
    ("rbm:10,sparsity=1.5", "sparsity=1.5: must be in (0, 1) (or 0: off)"),
    ("rbm:10,weight_decay=-0.1", "weight_decay=-0.1: must be in [0, 1]"),
    ("rbm:10,negative_visible=gibbs", "negative_visible='gibbs': use mean or sample"),
    ("grbm:10,min_std=0", "min_std=0: must be in (0, 10.0]"),
    ("ae:10,sparsity=-0.5", "sparsity=-0.5: must be in (0, 1) (or 0: off)"),
    ("ae:10,loss=l1", "loss='l1': use auto, ce or mse"),
    ("ae:10,noise=mask:1.5", "use none, mask:P"),
])
def test_out_of_range_options_are_one_line_errors_naming_the_range(text, message):
    with pytest.raises(LayerwiseError) as error:
        LayerSpec.parse(text)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_sentinels_are_accepted_and_kept_for_the_trainer():
    spec = LayerSpec.parse("rbm:10,epochs=0,lr=0,sparsity=0")
    assert (spec.epochs, spec.lr, spec.options) == (0, 0.0, {"sparsity": 0.0})
    assert "epochs" not in spec.build(5, "unit").hparams  # the trainer's, not the layer's


@pytest.mark.parametrize("make", [
    lambda: get_layer_class("rbm")(10, 5, momentum=5),
    lambda: build_layer({"kind": "rbm", "n_visible": 10, "n_hidden": 5, "options": {"k": 0}}),
    lambda: build_layer({"kind": "ae", "n_visible": 10, "n_hidden": 5, "options": {"act": "tanh"}}),
    lambda: get_layer_class("grbm")(10, 0),
    lambda: get_layer_class("rbm")(10, 5, pcd="yes"),
    lambda: get_layer_class("rbm")(10, 5, epochs=3),
    lambda: LayerSpec("rbm", 10, {"momentum": -0.5}),
    lambda: LayerSpec("rbm", 10, epochs=-1),
    lambda: LayerSpec("rbm", 0),
])
def test_the_python_api_refuses_what_the_command_line_refuses(make):
    with pytest.raises(LayerwiseError):
        make()


def test_constructor_values_become_plain_values_of_the_declared_type():
    layer = get_layer_class("rbm")(10, 5, k=np.int64(2), momentum=np.float32(0.25), sparsity=0)
    assert [type(layer.hparams[name]) for name in ("k", "momentum", "sparsity")] == [int, float, float]


@settings(max_examples=60, deadline=None)
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10),
                       st.text(max_size=6)))
def test_any_momentum_is_accepted_in_range_or_refused_in_one_line(value):
    try:
        spec = LayerSpec.parse(f"rbm:4,momentum={value}")
    except LayerwiseError as error:
        assert "\n" not in str(error) and "momentum" in str(error)
    else:
        assert 0 <= spec.options["momentum"] < 1


@pytest.mark.parametrize("kind", list_layers())
def test_list_layers_shows_every_declared_option_with_its_range(kind):
    text = describe_layers()
    for option in [*get_layer_class(kind).options.values(), *TRAINER_OPTIONS.values()]:
        assert f"{option.name}={option.default}" in text and option.describe_range() in text


@pytest.mark.parametrize("estimator_class", [GaussianRBM, Autoencoder])
def test_estimator_parameters_and_constraints_are_the_layer_declarations(estimator_class):
    declared = get_layer_class(estimator_class.kind).options
    defaults = estimator_class().get_params()
    for name, option in declared.items():
        assert defaults[name] == option.default, name
        assert [str(c) for c in estimator_class._parameter_constraints[name]] == \
            [str(c) for c in option.constraints()], name
    assert defaults["learning_rate"] == get_layer_class(estimator_class.kind).default_lr


@pytest.mark.parametrize("estimator", [GaussianRBM(momentum=1.0), GaussianRBM(k=0), Autoencoder(act="tanh"),
                                       Autoencoder(sparsity=1.0), BernoulliRBM(learning_rate=0)])
def test_estimators_refuse_out_of_range_parameters_as_scikit_learn_does(estimator):
    with pytest.raises(InvalidParameterError):
        estimator.fit(np.random.default_rng(0).random((20, 4)))


def test_drop_in_has_scikit_learns_parameters_and_accepts_what_it_accepts():
    ours, theirs = inspect.signature(BernoulliRBM).parameters, inspect.signature(neural_network.BernoulliRBM).parameters
    assert [name for name in ours if name != "device"] == list(theirs)
    assert all(ours[name].default == theirs[name].default for name in theirs)
    BernoulliRBM(n_iter=0).fit(np.random.default_rng(0).random((20, 4)))  # scikit-learn accepts n_iter=0


# The two rbm options that express scikit-learn's algorithm -------------------------------------------------
def rbm(**options):
    return LayerSpec("rbm", 6, options).build(64, "unit")


def test_visible_init_sets_the_visible_biases_from_the_data_or_zero(digits_unit):
    by_data, zero = rbm(), rbm(visible_init="zero")
    by_data.init_from_data(digits_unit)
    zero.init_from_data(digits_unit)
    p = digits_unit.mean(0).clamp(0.01, 0.99)
    torch.testing.assert_close(by_data.visible_bias.detach(), torch.log(p / (1 - p)))
    assert torch.equal(zero.visible_bias.detach(), torch.zeros(64))


@pytest.mark.parametrize("pcd", [False, True])
def test_negative_visible_ends_the_chain_at_means_or_binary_samples(pcd, digits_unit):
    h = torch.sigmoid(torch.randn(50, 6))
    mean_v, _ = rbm(pcd=pcd).negative_phase(h)
    sampled_v, _ = rbm(pcd=pcd, negative_visible="sample").negative_phase(h)
    assert set(sampled_v.unique().tolist()) == {0.0, 1.0}
    assert ((mean_v > 0) & (mean_v < 1)).all()


def test_layerwise_defaults_model_digits_better_than_scikit_learns_choices():
    """The documented reason for the defaults: pseudo-likelihood about -17 against scikit-learn's -21."""
    X = load_digits().data / 16.0
    scikit_learns = BernoulliRBM(n_components=64, learning_rate=0.1, batch_size=10, n_iter=7, random_state=9).fit(X)

    class Defaults(BernoulliRBM):  # the same estimator with the rbm layer's own defaults
        fixed_options = {"pcd": True, "momentum": 0.0}

    ours = Defaults(n_components=64, learning_rate=0.1, batch_size=10, n_iter=7, random_state=9).fit(X)
    assert ours.score_samples(X).mean() > scikit_learns.score_samples(X).mean() + 1
