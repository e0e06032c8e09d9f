"""The measured advisor on digits: LogME, the cut features, the recommendation, and ``finetune --advise``."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import finetune
from cli_checks import assert_usage_error
from finetune.study.advisor import cut_features
from finetune.cli import main
from finetune.study.logme import class_evidence, logme
from finetune.networks.sources import load_source
from pretrain import load_data, pretrain_stack
from pretrain.data.dataset import Dataset

LAYERS = ["rbm:64,momentum=0.9", "rbm:32,momentum=0.9"]


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


@pytest.fixture(scope="module")
def stacks(tmp_path_factory, digits):
    """A stack pretrained on the digits' training images, and one of the same shape pretrained on uniform noise."""
    real, noise = tmp_path_factory.mktemp("real"), tmp_path_factory.mktemp("noise")
    pretrain_stack(digits, LAYERS, out=real, epochs=15, progress=False)
    uniform = np.random.default_rng(0).uniform(0, 16, size=digits.x_train.shape)
    pretrain_stack(Dataset("uniform-noise", uniform, None, None, None), LAYERS, out=noise, epochs=15, progress=False)
    return str(real), str(noise)


def evidence_by_brute_force(f, y, grid):
    """The log evidence per row maximised over a grid of (alpha, beta), from the dense formula."""
    n, d = f.shape
    best = -np.inf
    for alpha in grid:
        for beta in grid:
            a = alpha * torch.eye(d, dtype=torch.float64) + beta * f.T @ f
            m = beta * torch.linalg.solve(a, f.T @ y)
            value = (n * np.log(beta) + d * np.log(alpha) - n * np.log(2 * np.pi) - beta * float(((f @ m - y) ** 2).sum())
                     - alpha * float(m @ m) - float(torch.logdet(a))) / (2 * n)
            best = max(best, value)
    return best


@pytest.mark.parametrize("n, d", [(60, 8), (12, 30)])  # more rows than features, and fewer
def test_logme_fixed_point_reaches_the_maximum_evidence(n, d):
    f = torch.randn(n, d, dtype=torch.float64)
    y = (torch.rand(n) < 0.5).double()
    u, s, _ = torch.linalg.svd(f, full_matrices=False)
    found = class_evidence(u, s, y, d)
    grid_best = evidence_by_brute_force(f, y, np.logspace(-3, 3, 61))
    assert grid_best - 1e-9 <= found < grid_best + 5e-3


def test_logme_ranks_features_that_determine_the_labels_above_noise(digits_unit):
    from sklearn.datasets import load_digits
    labels = torch.from_numpy(load_digits().target)
    informative = logme(digits_unit, labels, 10)
    noise = logme(torch.rand_like(digits_unit), labels, 10)
    one_hot = logme(torch.nn.functional.one_hot(labels, 10).double() + 0.01 * torch.randn(len(labels), 10), labels, 10)
    assert one_hot > informative > noise + 0.3, (one_hot, informative, noise)


def test_cut_features_are_what_each_drop_top_body_outputs(stacks, digits):
    body = load_source(stacks[0], digits).body()
    inputs = body.preprocess(digits.x_train[:50])
    features = cut_features(body, inputs, torch.device("cpu"))
    assert [f.shape[1] for f in features] == [64, 32]
    with torch.no_grad():
        for drop, f in zip((1, 0), features):
            torch.testing.assert_close(f, body.drop_top(drop).eval()(inputs))


def test_advisor_recommends_the_real_stack_over_the_noise_stack(stacks, digits):
    real, noise = stacks
    advice = finetune.advise(digits, [noise, real], labels_per_class=10, progress=False)
    assert advice.recommendation["source"] == real, advice.format()
    sources = {c.source for c in advice.candidates}
    assert sources == {real, noise, f"random:{real}", f"random:{noise}", "pixels"}
    assert len(advice.candidates) == 9  # two cuts per stack and control, one for pixels
    real_top = next(c for c in advice.candidates if c.source == real and c.drop_top == 0)
    noise_top = next(c for c in advice.candidates if c.source == noise and c.drop_top == 0)
    assert real_top.logme > noise_top.logme and real_top.gain > 0


def test_advice_json_parses_and_its_args_run_as_a_finetune_command(stacks, tmp_path):
    real, noise = stacks
    result = CliRunner().invoke(main, ["digits", "--from", real, "--from", noise, "--labels-per-class", "10",
                                       "--advise", "--report", str(tmp_path / "advice"), "-q"])
    assert result.exit_code == 0, result.output
    assert "scenario:" in result.output and "LogME" in result.output
    advice = json.loads((tmp_path / "advice" / "advice.json").read_text())
    recommendation = advice["recommendation"]
    assert recommendation["source"] == real and recommendation["args"][:3] == ["digits", "--from", real]
    assert len(advice["candidates"]) == 9 and {"probe", "logme", "seconds"} <= set(advice["candidates"][0])
    ran = CliRunner().invoke(main, recommendation["args"] + ["--epochs", "2", "--report", str(tmp_path / "run"), "-q"])
    assert ran.exit_code == 0, ran.output
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    assert [(r["source"], r["schedule"], r["labels_per_class"]) for r in rows] == [
        (real, recommendation["schedule"], 10)]


@pytest.mark.parametrize("budget_args", [[], ["--labels-per-class", "1,10"], ["--labels", "100"],
                                         ["--labels-per-class", "10", "--labels", "100"]])
def test_advise_needs_exactly_one_per_class_budget(stacks, budget_args):
    result = CliRunner().invoke(main, ["digits", "--from", stacks[0], "--advise", *budget_args])
    assert_usage_error(result, "--advise measures one budget")


def test_the_python_api_refuses_several_budgets(digits):
    from pretrain.core.errors import LayerwiseError
    with pytest.raises(LayerwiseError, match="one budget"):
        finetune.advise(digits, ["pixels"], labels_per_class="1,10")
