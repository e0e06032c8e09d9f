"""Property-based tests of the `pretrain` command line: whatever is typed, never a traceback.

Random layer specs, data specs and numeric options, well-formed and garbage
alike: every invocation ends with exit 0, or exit 1 or 2 with exactly one
``Error:`` line. Most examples stop at parsing (no DATA, or a value out of
range); those that would train use 1 epoch of tiny layers on 40 small rows.
"""
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st

from pretrain.cli import main
from pretrain.layers import get_layer_class, list_layers
from pretrain.layers.spec import TRAINER_OPTIONS
from pretrain.data.readers import TORCHVISION

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: text without control characters or line separators: messages that echo a path verbatim would break their
#: one line on those (see test_a_path_with_a_line_break_stays_one_line)
words = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12)
numbers = st.one_of(st.integers(-5, 20), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["0", "-0", "1e-9", "1e6", "1e400", "nan", "inf", "-1", "0.5", "1"]))


def mostly(good, bad):
    """``good`` four times in five, ``bad`` otherwise."""
    return st.integers(0, 4).flatmap(lambda i: bad if i == 0 else good)


def declared_values(option):
    """Values around an option's declaration: its default, choices and interval ends, and numbers."""
    values = [str(option.default), *option.choices, "true", "false", "0", "1", "-1", "0.5", "2", "1e6"]
    values += [str(end) for end in (option.low, option.high) if end is not None]
    return st.sampled_from(values)


@st.composite
def layer_specs(draw, units=st.integers(1, 6)):
    """``KIND:UNITS[,key=value...]``: mostly real kinds, options and values near their declarations, some garbage."""
    kind = draw(mostly(st.sampled_from(list_layers()), words))
    declared = {**(get_layer_class(kind).options if kind in list_layers() else {}), **TRAINER_OPTIONS}
    head = draw(mostly(units.map(str), st.one_of(numbers.map(str), words)))
    options = []
    for name in draw(st.lists(mostly(st.sampled_from(sorted(declared)), words), max_size=3)):
        value = draw(mostly(declared_values(declared[name]), numbers.map(str)) if name in declared else words)
        if not (name in ("epochs", "k") and value.isdigit() and int(value) > 3):  # a valid spec trains in moments
            options.append(f",{name}={value}")
    text = f"{kind}:{head}" + "".join(options)
    return draw(mostly(st.just(text), st.one_of(st.just(text.replace(",", ";", 1)), words)))


def errors(result):
    """The invocation's ``Error:`` lines, after checking it ended as a command must."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1, 2), result.output
    if currently_in_test_context():
        event(f"exit {result.exit_code}")  # shown by pytest --hypothesis-show-statistics
    lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == (result.exit_code != 0), result.output
    if result.exit_code == 1:  # a failure is that one line, nothing else
        assert result.output.strip().splitlines() == lines, result.output
    if result.exit_code == 2:  # a usage mistake: click's usage line, then the error
        assert result.output.startswith("Usage: "), result.output
    return lines


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@settings(SETTINGS, max_examples=100)
@given(specs=st.lists(layer_specs(units=st.integers(-3, 10 ** 12)), min_size=1, max_size=3))
def test_layer_specs_without_data_end_at_parsing(specs):
    """Without DATA nothing trains: a bad spec or the missing DATA is the one usage error."""
    result = invoke(*[word for spec in specs for word in ("-l", spec)])
    errors(result)
    assert result.exit_code == 2


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x=np.random.default_rng(0).random((40, 3, 3)))
    return path


@settings(SETTINGS, max_examples=150)  # a fifth train, each in a few milliseconds
@given(specs=st.lists(layer_specs(), min_size=1, max_size=2))
def test_layer_specs_that_parse_train_or_fail_in_one_line(specs, tiny_npz, tmp_path):
    args = [word for spec in specs for word in ("-l", spec)]
    result = invoke(f"npz:{tiny_npz}", *args, "--epochs", 1, "--batch-size", 10, "-o", tmp_path / "run",
                    "--overwrite", "-q", "--no-plots", "--threads", 1)
    errors(result)
    if result.exit_code == 0:
        assert "saved" in result.output


data_specs = st.one_of(
    st.sampled_from(["digits", " Digits ", "idx:", "npz:", "folder:", "x.npz", "", ":", "npz:/no/such.npz",
                     "folder:/no/such", "idx:/no/such", "idx:.", "npz:.", "folder:.", "/", "~", "npz:~",
                     "npz:TINY", "TINY", "idx:TINY", "folder:TINY", "npz:TINY:x"]),
    st.tuples(st.sampled_from(["idx:", "npz:", "folder:", ""]), words).map("".join),
).filter(lambda spec: spec.strip().lower() not in TORCHVISION)  # never a download


@SETTINGS
@given(spec=data_specs)
def test_data_specs_load_or_fail_in_one_line(spec, tiny_npz, tmp_path):
    """Specs of every kind, with paths that exist (TINY: a small valid npz), do not, or are no path at all."""
    result = invoke(spec.replace("TINY", str(tiny_npz)), "-l", "rbm:2", "--epochs", 1, "-o", tmp_path / "run",
                    "--overwrite", "-q", "--no-plots", "--threads", 1)
    errors(result)


def in_range(option, text):
    """Whether click's range type for ``option`` accepts ``text`` (what the test expects of it)."""
    try:
        value = int(text) if option in ("--epochs", "--batch-size", "--seed") else float(text)
    except ValueError:
        return False
    return {"--epochs": value >= 1, "--lr": value >= 0, "--batch-size": value >= 1,
            "--val-fraction": 0 <= value < 1, "--seed": value >= 0}[option]


@SETTINGS
@given(option=st.sampled_from(["--epochs", "--lr", "--batch-size", "--val-fraction", "--seed"]),
       value=st.one_of(numbers.map(str), words))
def test_numeric_options_are_checked_at_parsing(option, value):
    """A value in range leaves only the missing DATA to complain about; one out of range names its option."""
    lines = errors(invoke("-l", "rbm:2", option, value))
    assert len(lines) == 1
    if in_range(option, value.strip()):
        assert "missing DATA" in lines[0], lines
    else:
        assert option in lines[0] or "requires an argument" in lines[0], lines


@pytest.mark.parametrize("option", ["--lr", "--val-fraction"])
def test_nan_is_refused_at_parsing(option):
    lines = errors(invoke("-l", "rbm:2", option, "nan"))
    assert option in lines[0]


def test_a_path_with_a_line_break_stays_one_line():
    errors(invoke("idx:\r", "-l", "rbm:2"))
