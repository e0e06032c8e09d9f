"""scikit-learn's own tests of its BernoulliRBM, run against pretrain.sklearn.BernoulliRBM.

The module ``sklearn/neural_network/tests/test_rbm.py`` of the installed
scikit-learn is read at test time, its import of ``BernoulliRBM`` switched to
ours, and each of its test functions (with its own parametrizations) run as one
case here: nothing of scikit-learn's code is copied into this repository.
"""
import inspect
import itertools
import types
import warnings
from pathlib import Path

import pytest
import sklearn

UPSTREAM = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_rbm.py"
THEIR_IMPORT = "from sklearn.neural_network import BernoulliRBM"
OUR_IMPORT = "from pretrain.sklearn import BernoulliRBM"
#: Upstream tests that cannot pass against a torch RBM, with the reason (strict xfail: they must fail).
CANNOT_PASS = {
    "test_fit_gibbs": "pins the weights drawn from numpy's random stream (RandomState(42)) to 4 decimals; "
                      "ours come from torch's generator",
}


def load_upstream() -> types.ModuleType:
    """scikit-learn's test module with its BernoulliRBM import switched to ours, executed in memory."""
    source = UPSTREAM.read_text()
    assert source.count(THEIR_IMPORT) == 1, f"{UPSTREAM} no longer imports BernoulliRBM as expected"
    module = types.ModuleType("sklearn_upstream_test_rbm")
    module.__file__ = str(UPSTREAM)
    with warnings.catch_warnings():  # marks registered by scikit-learn's own conftest, such as thread_unsafe
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        exec(compile(source.replace(THEIR_IMPORT, OUR_IMPORT), str(UPSTREAM), "exec"), module.__dict__)
    return module


def expand(function):
    """``(id, kwargs)`` for each combination of the function's ``pytest.mark.parametrize`` marks."""
    axes = []
    for mark in getattr(function, "pytestmark", []):
        if mark.name != "parametrize":
            continue
        names, values = mark.args[:2]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        rows = [value if len(names) > 1 else (value,) for value in values]
        axes.append([(dict(zip(names, row)), "-".join(getattr(v, "__name__", str(v)) for v in row))
                     for row in rows])
    for combination in itertools.product(*axes):
        kwargs = {k: v for params, _ in combination for k, v in params.items()}
        yield "-".join([function.__name__] + [label for _, label in combination]), kwargs


def upstream_cases():
    if not UPSTREAM.exists():
        return [pytest.param(None, None, marks=pytest.mark.skip(
            reason=f"scikit-learn's test module is not installed ({UPSTREAM})"))]
    module = load_upstream()
    cases = []
    for name, function in vars(module).items():
        if not (name.startswith("test_") and inspect.isfunction(function)):
            continue
        marks = [pytest.mark.xfail(reason=CANNOT_PASS[name], strict=True)] if name in CANNOT_PASS else []
        cases += [pytest.param(function, kwargs, id=case_id, marks=marks) for case_id, kwargs in expand(function)]
    return cases


@pytest.mark.parametrize("function, kwargs", upstream_cases())
def test_scikit_learn_rbm_suite_passes_against_ours(function, kwargs, request):
    fixtures = {name: request.getfixturevalue(name)
                for name in inspect.signature(function).parameters if name not in kwargs}
    function(**kwargs, **fixtures)


def test_the_upstream_suite_is_the_expected_one():
    """24 cases as of scikit-learn 1.5-1.9; a count that moves means the suite changed: look again."""
    if not UPSTREAM.exists():
        pytest.skip(f"scikit-learn's test module is not installed ({UPSTREAM})")
    cases = upstream_cases()
    assert len(cases) >= 24
    assert sum(bool(case.marks) for case in cases) == 2
