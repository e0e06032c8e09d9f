"""The memory a layer list will need, estimated before anything trains (issue 30, item 1): a list too large for
the machine is a usage mistake naming the fix, and the sizes the README, the tests and the examples use pass."""
import pytest
import torch
from click.testing import CliRunner

import pretrain
from cli_checks import assert_usage_error
from pretrain.cli import main
from pretrain.core.errors import UsageMistake
from pretrain.layers import LayerSpec
from pretrain.training import footprint
from pretrain.training.footprint import check_memory, in_words, layer_needs

GB = 10 ** 9
CPU = torch.device("cpu")
#: far past any machine: 64 x 10^12 weights
HUGE = "rbm:1000000000000"


def needs(layers, shape, n_rows, batch_size=100, codes_in_memory=True):
    return layer_needs([LayerSpec.parse(text) for text in layers], shape, "unit", n_rows, batch_size,
                       codes_in_memory)


@pytest.mark.parametrize("layers, shape, n_rows, batch_size", [
    (["patch-kmeans:1600"], (3, 32, 32), 50000, 100),  # the CIFAR-10 table's layers
    (["patch-grbm:1600,sparsity=0.05,sparsity_cost=0.3,momentum=0.9,lr=0.005"], (3, 32, 32), 50000, 100),
    (["rbm:500"], (784,), 60000, 1000),  # Fashion-MNIST, as the README times it
    (["rbm:1000", "rbm:500", "rbm:250"], (784,), 60000, 100),
    (["cae:32,epochs=3", "cae:64,kernel=3,epochs=4"], (1, 28, 28), 60000, 100),
    (["crbm:16,kernel=3", "rbm:64"], (1, 8, 8), 1797, 100),
])
def test_the_sizes_in_use_are_estimated_well_within_a_small_machine(layers, shape, n_rows, batch_size):
    assert max(need.total for need in needs(layers, shape, n_rows, batch_size)) < 2 * GB


def test_the_estimate_counts_state_a_batch_of_maps_and_the_codes_kept():
    [need] = needs(["cae:1000,kernel=3,pool=1"], (1, 8, 8), 1797)
    assert need.activations == 4 * 100 * 1000 * 64 * 4  # four batches of 100 images' 1,000 maps of 8 x 8 floats
    assert need.state == 4 * (1000 * 9 + 1000 + 1) * 4  # Adam: weights, gradient and two moments
    assert need.codes == 0  # the top layer passes nothing up
    lower, upper = needs(["rbm:100", "rbm:10"], (64,), 1000)
    assert lower.codes == 1000 * 100 * 4 and upper.codes == 1000 * 100 * 4  # written by one, read by the other
    assert needs(["rbm:100", "rbm:10"], (64,), 1000, codes_in_memory=False)[0].codes == 0


def refusal(layers, shape, free, monkeypatch, n_rows=1797, codes_in_memory=True):
    monkeypatch.setattr(footprint, "free_bytes", lambda device: free)
    with pytest.raises(UsageMistake) as refused:
        check_memory([LayerSpec.parse(text) for text in layers], shape, "unit", n_rows, 100, CPU, codes_in_memory)
    return str(refused.value)


def test_maps_too_wide_for_a_batch_name_the_batch_size_that_fits(monkeypatch):
    message = refusal(["cae:20000"], (1, 8, 8), GB, monkeypatch)  # 20.5 MB of maps an image, four times
    assert message.startswith("layer 1 (cae:20000) needs about 2.1 GB of memory (8.3 MB of weights and optimizer "
                              "state, 2.0 GB for 100 rows at a time, 0 bytes of codes) ")
    assert message.endswith("and this machine has 1.0 GB free: use batch_size=48 or less (it is batch_size=100), "
                            "or fewer units")


def test_weights_too_large_name_fewer_units(monkeypatch):
    assert refusal(["rbm:40000000"], (64,), GB, monkeypatch).endswith(": give it fewer units")


def test_codes_too_large_for_memory_name_the_cache_dir(monkeypatch):
    message = refusal(["rbm:20000", "rbm:10"], (64,), 200 * 10 ** 6, monkeypatch, n_rows=10000)
    assert message.startswith("layer 1 (rbm:20000) needs about ") and message.endswith(
        ": keep the codes on disk with cache_dir=DIR")
    monkeypatch.setattr(footprint, "free_bytes", lambda device: 200 * 10 ** 6)
    check_memory([LayerSpec.parse("rbm:20000"), LayerSpec.parse("rbm:10")], (64,), "unit", 10000, 100, CPU,
                 codes_in_memory=False)  # on disk they fit


def test_nothing_is_checked_where_free_memory_cannot_be_read(monkeypatch):
    monkeypatch.setattr(footprint, "free_bytes", lambda device: None)
    check_memory([LayerSpec.parse(HUGE)], (64,), "unit", 1797, 100, CPU, True)


def test_free_memory_is_read_on_this_machine():
    assert footprint.free_bytes(CPU) > 0


def test_a_layer_list_too_large_is_a_usage_mistake_before_anything_is_written(tmp_path):
    result = CliRunner().invoke(main, ["digits", "-l", "rbm:8", "-l", HUGE, "-o", str(tmp_path / "new" / "run"), "-q"])
    assert_usage_error(result, f"layer 2 ({HUGE}) needs about ")
    assert "free: give it fewer units" in result.output
    assert not (tmp_path / "new").exists()


def test_the_command_names_its_flags(monkeypatch, tmp_path):
    monkeypatch.setattr(footprint, "free_bytes", lambda device: GB)
    result = CliRunner().invoke(main, ["digits", "-l", "cae:20000", "-o", str(tmp_path / "run"), "-q"])
    assert_usage_error(result, "free: use --batch-size 48 or less (it is --batch-size 100), or fewer units")


def test_the_python_api_names_its_arguments(tmp_path):
    with pytest.raises(UsageMistake, match=r"cache_dir=DIR|batch_size=\d+ or less|fewer units"):
        pretrain.pretrain_stack("digits", [HUGE], tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_sizes_in_words():
    assert [in_words(n) for n in (999, 1000, 2_560_000_000, 10 ** 18)] == ["999 bytes", "1.0 kB", "2.6 GB",
                                                                          "1000.0 PB"]
