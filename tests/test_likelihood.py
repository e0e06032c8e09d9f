"""Log-likelihood in nats: exact log Z against brute force, AIS against exact, and where users see it."""
import itertools
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli_checks import assert_failure, assert_usage_error
from pretrain.cli import main
from pretrain.core.errors import LayerwiseError
from pretrain.training.epoch import layer_optimizer, run_epoch
from pretrain.layers import LayerSpec
from pretrain.likelihood import (DEFAULT_BETAS, ais_log_partition, beta_schedule, binarise, exact_log_partition,
                                 log_likelihood)
from pretrain.likelihood.partition import log_mean_bounds, log_partition_over_hidden, log_partition_over_visible


def random_layer(spec, n_visible, seed=0, scale=1.0):
    """A layer with every parameter drawn from N(0, scale^2): far from uniform, so the sums are not trivial."""
    torch.manual_seed(seed)
    layer = LayerSpec.parse(spec).build(n_visible, "unit" if spec.startswith("rbm") else "real")
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.normal_(0, scale)
    return layer


def brute_force_log_z(rbm):
    """``log sum_{v,h} exp(b.v + c.h + h.W v)`` over every joint binary state."""
    w, b, c = (t.detach().double() for t in (rbm.weight, rbm.visible_bias, rbm.hidden_bias))
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=rbm.n_visible + rbm.n_hidden))).double()
    v, h = states[:, :rbm.n_visible], states[:, rbm.n_visible:]
    return float(torch.logsumexp(v @ b + h @ c + ((h @ w) * v).sum(1), 0))


@pytest.fixture(scope="module")
def digits_rbm():
    """An rbm:20 trained 40 epochs (CD-1) on the binarised digits, with its exact log Z (2^20 hidden states)."""
    from sklearn.datasets import load_digits
    x = binarise(torch.from_numpy((load_digits().data / 16.0).astype(np.float32)))
    torch.manual_seed(0)
    rbm = LayerSpec.parse("rbm:20").build(64, "unit")
    rbm.init_from_data(x)
    optimizer = layer_optimizer(rbm, 0.1)
    for _ in range(40):
        run_epoch(rbm, optimizer, x, batch_size=20)
    return rbm.eval(), x, exact_log_partition(rbm)


@pytest.fixture(scope="module")
def ais_10000(digits_rbm):
    rbm, x, _ = digits_rbm
    return ais_log_partition(rbm, runs=100, betas=10000, base_data=x, seed=0)


# Exact log Z ---------------------------------------------------------------------
def test_exact_log_z_of_a_6x4_rbm_equals_brute_force_both_ways():
    rbm = random_layer("rbm:4", 6)
    truth = brute_force_log_z(rbm)
    assert log_partition_over_visible(rbm) == pytest.approx(truth, abs=1e-6)
    assert log_partition_over_hidden(rbm) == pytest.approx(truth, abs=1e-6)
    assert exact_log_partition(rbm) == pytest.approx(truth, abs=1e-6)  # sums the 4 hidden units
    wide = random_layer("rbm:6", 4, seed=1)  # 4 visible units: sums over the visible side
    assert exact_log_partition(wide) == pytest.approx(brute_force_log_z(wide), abs=1e-6)


def test_exact_log_z_of_a_grbm_equals_numerical_integration():
    """2 Gaussian visible units with learned std, 3 hidden: the integral on a fine grid agrees."""
    grbm = random_layer("grbm:3,learn_std=true", 2, scale=0.6).double()
    grid = torch.linspace(-15, 15, 2001, dtype=torch.float64)
    with torch.no_grad():
        cell = 2 * math.log(grid[1] - grid[0])
        integral = torch.logsumexp(-grbm.free_energy(torch.cartesian_prod(grid, grid)), 0) + cell
    assert exact_log_partition(grbm) == pytest.approx(float(integral), abs=1e-6)


def test_log_likelihood_is_normalised_over_all_binary_vectors():
    rbm = random_layer("rbm:4", 6)
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=6)))
    total = torch.logsumexp(log_likelihood(rbm, every, exact_log_partition(rbm)).double(), 0)
    assert float(total) == pytest.approx(0.0, abs=1e-5)


def test_log_likelihood_of_an_rbm_refuses_gray_levels_and_ae_layers():
    rbm = random_layer("rbm:4", 6)
    with pytest.raises(LayerwiseError, match="binarise the inputs first"):
        log_likelihood(rbm, torch.full((2, 6), 0.3), 0.0)
    with pytest.raises(LayerwiseError, match="rbm or grbm"):
        exact_log_partition(LayerSpec.parse("ae:4").build(6, "unit"))


def test_exact_log_z_refuses_too_many_states():
    with pytest.raises(LayerwiseError, match="ais_log_partition"):
        exact_log_partition(LayerSpec.parse("rbm:26").build(30, "unit"))


# AIS -------------------------------------------------------------------------------
def test_ais_with_base_rates_is_within_half_a_nat_and_its_bounds_hold_the_exact_value(digits_rbm, ais_10000):
    _, _, exact = digits_rbm
    log_z, low, high = ais_10000
    assert abs(log_z - exact) < 0.5, (log_z, exact)
    assert low < exact < high, (low, exact, high)
    assert exact > 10  # a trained model, far from the uniform base (log Z = 84 log 2 = 58 for zero weights)


def test_same_seed_same_estimate_and_the_global_random_state_is_untouched(digits_rbm):
    rbm, x, _ = digits_rbm
    state = torch.get_rng_state()
    first = ais_log_partition(rbm, betas=300, base_data=x, seed=3)
    assert ais_log_partition(rbm, betas=300, base_data=x, seed=3) == first
    assert ais_log_partition(rbm, betas=300, base_data=x, seed=4) != first
    assert torch.equal(torch.get_rng_state(), state)


def test_ais_without_base_data_converges_with_more_betas(digits_rbm):
    rbm, _, exact = digits_rbm
    log_z, low, high = ais_log_partition(rbm, runs=100, betas=20000, seed=0)
    assert abs(log_z - exact) < 0.5 and low < exact < high, (log_z, low, high, exact)


def test_more_betas_give_a_smaller_error(digits_rbm, ais_10000):
    """100 betas: RMS error over 8 seeds; it must exceed the 10,000-beta error, and its bounds be wider."""
    rbm, x, exact = digits_rbm
    coarse = [ais_log_partition(rbm, runs=100, betas=100, base_data=x, seed=seed) for seed in range(8)]
    rms = math.sqrt(np.mean([(log_z - exact) ** 2 for log_z, _, _ in coarse]))
    assert rms > abs(ais_10000[0] - exact), (rms, ais_10000, exact)
    assert min(high - low for _, low, high in coarse) > ais_10000[2] - ais_10000[1]


def test_ais_on_a_grbm_matches_its_exact_log_z():
    grbm = random_layer("grbm:8,learn_std=true", 6, scale=0.5)
    exact = exact_log_partition(grbm)
    log_z, low, high = ais_log_partition(grbm, runs=100, betas=2000)
    assert abs(log_z - exact) < 0.1 and low < exact < high, (log_z, low, high, exact)


def test_beta_schedules():
    assert len(DEFAULT_BETAS) == 14501 and DEFAULT_BETAS[0] == 0 and DEFAULT_BETAS[-1] == 1
    steps = np.diff(DEFAULT_BETAS)
    np.testing.assert_allclose(steps[[0, 499, 500, 4499, 4500, -1]], [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5], rtol=1e-6)
    np.testing.assert_allclose(beta_schedule(14501), DEFAULT_BETAS, atol=1e-12)
    assert len(beta_schedule(100)) == 100 and (np.diff(beta_schedule(100)) > 0).all()
    for bad in (1, [0.0, 0.5], [0.0, 0.6, 0.5, 1.0], [0.1, 1.0]):
        with pytest.raises(LayerwiseError, match="betas"):
            beta_schedule(bad)


def test_bounds_are_computed_in_log_space():
    log_w = torch.tensor([0.0, 1.0, 2.0, 0.5], dtype=torch.float64)
    w = log_w.exp()
    mean, error = w.mean(), 3 * w.std() / 2
    expected = (math.log(mean), math.log(mean - error) if mean > error else -math.inf, math.log(mean + error))
    np.testing.assert_allclose(log_mean_bounds(log_w), expected)
    shifted = log_mean_bounds(log_w + 5000.0)  # e^5000 overflows: log space does not
    np.testing.assert_allclose(shifted, [v + 5000 for v in log_mean_bounds(log_w)])
    assert log_mean_bounds(torch.tensor([0.0, 30.0]))[1] == -math.inf  # 3 standard errors exceed the mean


# Where users see it ----------------------------------------------------------------
def test_score_prints_one_line_and_records_it_in_the_stack(tmp_path):
    out = tmp_path / "dbn"
    trained = CliRunner().invoke(main, ["digits", "-l", "rbm:16", "-l", "rbm:8", "--epochs", "2", "--ais-every", "1",
                                        "-o", str(out), "-q", "--no-plots"])
    assert trained.exit_code == 0, trained.output
    history = json.loads((out / "stack.json").read_text())["history"]
    assert all(r["log_likelihood_val"] < 0 and "ais_log_z" in r for r in history)
    result = CliRunner().invoke(main, ["--score", str(out), "--ais-runs", "20", "--ais-betas", "500"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("test log-likelihood -") and "thresholded at 0.5" in lines[0]
    score = json.loads((out / "stack.json").read_text())["test_log_likelihood"]
    assert score["low"] <= score["nats"] <= score["high"] < 0
    assert (score["n_test"], score["ais_runs"], score["ais_betas"]) == (360, 20, 500)
    assert score["log_z"] == max(z for z, _, _ in score["log_z_by_base"].values())  # the cautious one
    assert set(score["log_z_by_base"]) == {"base_rates", "uniform"}
    from pretrain.training.stack import load_stack
    assert load_stack(out).info["test_log_likelihood"] == score
    bound = json.loads((out / "stack.json").read_text())["test_log_likelihood_dbn_bound"]
    assert bound["layers"] == 2 and bound["low"] <= bound["nats"] < 0 and "as a 2-layer DBN at least" in lines[0]


def test_score_mistakes(tmp_path):
    runner = CliRunner()
    assert_usage_error(runner.invoke(main, ["digits", "--score", str(tmp_path)]), "drop DATA")
    assert_failure(runner.invoke(main, ["--score", str(tmp_path / "none")]), "no pretrained stack")


# The DBN bound ---------------------------------------------------------------------
def test_dbn_bound_of_one_layer_is_the_log_likelihood():
    from pretrain.likelihood.dbn_bound import stack_lower_bound
    rbm = random_layer("rbm:4", 6)
    v = binarise(torch.rand(5, 6))
    log_z = exact_log_partition(rbm)
    torch.testing.assert_close(stack_lower_bound([rbm], v, log_z).float(), log_likelihood(rbm, v, log_z))


def test_dbn_bound_matches_its_enumerated_value_and_stays_below_the_exact_log_likelihood():
    """5-4-3 DBN: every h1 enumerated gives the bound's expectation and log p(v) = log sum_h1 p(v|h1) p(h1)."""
    from pretrain.likelihood.dbn_bound import bernoulli_entropy, bernoulli_log_prob, stack_lower_bound
    bottom, top = random_layer("rbm:4", 5, seed=1), random_layer("rbm:3", 4, seed=2)
    v = torch.tensor(list(itertools.product([0.0, 1.0], repeat=5)))[::3]
    h1 = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)))
    log_z = exact_log_partition(top)
    with torch.no_grad():
        log_p_v_given_h = bernoulli_log_prob(v[:, None], torch.addmm(bottom.visible_bias, h1, bottom.weight))
        log_p_h = -top.free_energy(h1) - log_z
        exact = torch.logsumexp(log_p_v_given_h + log_p_h, 1)
        up = bottom.hidden_preactivation(v)
        log_q = bernoulli_log_prob(h1, up[:, None])  # [rows, 16]: log q(h1 | v)
        enumerated = (log_q.exp() * (log_p_v_given_h + log_p_h)).sum(1) + bernoulli_entropy(up)
    estimate = stack_lower_bound([bottom, top], v, log_z, samples=4000)
    torch.testing.assert_close(estimate.float(), enumerated, atol=0.05, rtol=0)
    assert (enumerated <= exact + 1e-5).all() and (exact - enumerated).max() > 1e-3
