"""Input refused before training (NaN/inf, constant data, decompression bombs) and layers stopped when they diverge."""
import io
import struct
import zlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import pretrain
from cli_checks import assert_failure
from pretrain.training import greedy
from pretrain.cli import main
from pretrain.training.divergence import MAX_PARAMETER, Guard, check_input
from pretrain.core.errors import LayerwiseError
from pretrain.layers import LayerSpec


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# --- divergence ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, rule", [("rbm", "its hidden_bias reached"), ("grbm", "its loss is nan"),
                                        ("ae", "its weight reached")])
def test_a_rate_of_1e6_stops_every_kind_with_the_remedy(kind, rule):
    with pytest.raises(LayerwiseError, match=rf"layer 1 \({kind}:10\) diverged in epoch 1: {rule}.*"
                                             rf"lower its learning rate \(1e\+06\), e.g. -l {kind}:10,lr="):
        pretrain.pretrain_stack("digits", [f"{kind}:10"], epochs=1, lr=1e6, progress=False)


@pytest.mark.parametrize("kind", ["rbm", "grbm", "ae"])
def test_the_command_stops_a_rate_of_1e6_with_one_line(kind, tmp_path):
    result = invoke("digits", "-l", f"{kind}:10", "--lr", "1e6", "--epochs", 1, "-o", tmp_path / "run", "-q",
                    "--no-plots", "--threads", 1)
    assert_failure(result, "diverged in epoch 1")
    assert "lower its learning rate" in result.output and not (tmp_path / "run" / "stack.pt").exists()


@pytest.mark.parametrize("layers", [
    ["rbm:32", "rbm:16"], ["rbm:32,pcd=true,sparsity=0.1"], ["rbm:32,visible_init=zero,negative_visible=sample"],
    ["grbm:16,learn_std=true", "ae:8"], ["ae:32,noise=mask:0.3", "rbm:8"], ["ae:32,act=relu", "ae:8,loss=mse"],
])
def test_default_rates_on_a_little_data_do_not_trip_it(layers):
    """One and two epochs on 200 digits, the young layers the margin was chosen for."""
    x = pretrain.load_data("digits").x_train[:200]
    stack = pretrain.pretrain_stack(x, layers, epochs=2, progress=False)
    assert len(stack.info["history"]) == 2 * len(layers)


def trained_rbm():
    layer = LayerSpec.parse("rbm:8,pcd=true").build(64, "unit")
    layer.loss(torch.rand(20, 64))  # fills the persistent chain buffer
    return layer


@pytest.mark.parametrize("spoil, metrics, problem", [
    (lambda layer: None, {"loss": 1.0, "recon_train": 0.5, "recon_val": 0.19}, ""),
    (lambda layer: None, {"loss": float("inf"), "recon_train": 0.1}, "its loss is inf"),
    (lambda layer: None, {"loss": 1.0, "recon_train": 0.1, "recon_val": float("nan")}, "its recon_val is nan"),
    (lambda layer: layer.visible_bias.data.__setitem__(3, float("nan")), {"loss": 1.0, "recon_train": 0.1},
     "its visible_bias holds non-finite values"),
    (lambda layer: layer.chain.fill_(float("inf")), {"loss": 1.0, "recon_train": 0.1}, "its chain holds non-finite"),
    (lambda layer: layer.weight.data.__setitem__((0, 0), -2 * MAX_PARAMETER), {"loss": 1.0, "recon_train": 0.1},
     "its weight reached 2e+03 (limit 1000)"),
    (lambda layer: None, {"loss": 1.0, "recon_train": 0.21}, "reconstruction error 0.21, over 2 times 0.1"),
])
def test_each_rule_names_what_went_wrong(spoil, metrics, problem):
    layer = trained_rbm()
    spoil(layer)
    found = Guard(LayerSpec.parse("rbm:8,pcd=true"), 0, 0.1, reference=0.1).problem(layer, metrics)
    assert found.startswith(problem) if problem else found == ""


@pytest.mark.parametrize("spec, lr, remedy", [
    ("rbm:8,pcd=true", 5.0, "lower its learning rate (5), e.g. -l rbm:8,pcd=True,lr=0.1 (rbm's default)"),
    ("ae:8,noise=mask:0.3", 0.0005, "lower its learning rate (0.0005), e.g. -l ae:8,noise=mask:0.3,lr=5e-05"),
    ("grbm:8", 1.0, "-l grbm:8,lr=0.01 (grbm's default); Gaussian units also need standardised input"),
    ("rbm:8", float("nan"), "lower its learning rate (nan), e.g. -l rbm:8,lr=0.1 (rbm's default)"),
])
def test_the_remedy_keeps_the_layer_and_suggests_a_rate(spec, lr, remedy):
    assert remedy in Guard(LayerSpec.parse(spec), 0, lr, reference=0.1).remedy()


def test_a_resumed_layer_is_held_to_the_same_reference(tmp_path, monkeypatch, crash_at_epoch):
    """The reference is the untrained layer's error: a resume mid-layer must rebuild it exactly."""
    references = []

    class Recording(Guard):
        def __init__(self, *args):
            super().__init__(*args)
            references.append((self.index, self.reference))

    monkeypatch.setattr(greedy, "Guard", Recording)
    options = dict(epochs=3, batch_size=50, seed=1, progress=False)
    pretrain.pretrain_stack("digits", ["rbm:16", "ae:8"], tmp_path / "straight", **options)
    straight = list(references)
    crash_at_epoch(5)  # second layer, second epoch
    with pytest.raises(KeyboardInterrupt):
        pretrain.pretrain_stack("digits", ["rbm:16", "ae:8"], tmp_path / "crashed", **options)
    crash_at_epoch(None)
    references.clear()
    pretrain.pretrain_stack("digits", ["rbm:16", "ae:8"], tmp_path / "crashed", resume=True, **options)
    assert len(straight) == 2 and references == straight[1:]  # only the unfinished layer trains again


# --- input checked before training ---------------------------------------------------------

def spoilt_digits():
    x = pretrain.load_data("digits").x_train[:100].astype(np.float64)
    x[3, 2, 2] = np.nan
    x[3, 4, 4] = np.inf
    x[50, 0, 0] = -np.inf
    return x


@pytest.mark.parametrize("kind", ["rbm", "grbm", "ae"])
def test_nan_and_inf_in_the_input_are_counted_not_called_divergence(kind, monkeypatch):
    monkeypatch.setattr(greedy, "run_epoch", lambda *args, **kwargs: pytest.fail("trained on bad input"))
    with pytest.raises(LayerwiseError, match=r"the data holds 1 NaN and 2 infinite value\(s\) in 2 of 100 examples: "
                                             r"remove or impute them"):
        pretrain.pretrain_stack(spoilt_digits(), [f"{kind}:4"], epochs=1, progress=False)


@pytest.mark.parametrize("kind", ["rbm", "grbm", "ae"])
def test_constant_data_is_named_as_such(kind):
    with pytest.raises(LayerwiseError, match="the data is constant .all 40 examples are the same."):
        pretrain.pretrain_stack(np.full((40, 5), 0.3), [f"{kind}:4"], epochs=1, progress=False)


def test_constant_codes_name_the_layer_below(monkeypatch):
    monkeypatch.setattr(greedy, "encode", lambda layer, x, path=None: torch.zeros(len(x), layer.n_hidden))
    with pytest.raises(LayerwiseError, match="the codes of layer 1 is constant.*retrain layer 1 with other options"):
        pretrain.pretrain_stack("digits", ["rbm:8", "rbm:4"], epochs=1, progress=False)


def test_the_input_check_passes_what_varies():
    check_input(np.array([[0, 1], [0, 1], [0, 2]], dtype=np.uint8))  # one varying feature is enough
    check_input(torch.arange(6.0).reshape(3, 2))


def test_the_command_reports_bad_input_in_one_line(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x=spoilt_digits())
    assert_failure(invoke(f"npz:{path}", "-l", "rbm:4", "-o", tmp_path / "run", "-q"), "remove or impute them")
    np.savez(path, x=np.ones((30, 8, 8)))
    assert_failure(invoke(f"npz:{path}", "-l", "rbm:4", "-o", tmp_path / "run", "-q"), "the data is constant")


# --- decompression bombs -------------------------------------------------------------------

def forged_png(width: int, height: int) -> bytes:
    """A 1x1 grayscale PNG whose header (IHDR, with its CRC recomputed) claims ``width`` x ``height``."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"  # after the 8-byte signature and the chunk's length
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_an_image_claiming_30000_by_30000_pixels_is_one_line(tmp_path):
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / name)
    (tmp_path / "bomb.png").write_bytes(forged_png(30_000, 30_000))
    with pytest.raises(Image.DecompressionBombError):  # the file is what PIL calls a bomb
        Image.open(tmp_path / "bomb.png")
    with pytest.raises(LayerwiseError, match=r"image .*bomb.png claims more than [\d,]+ pixels.*remove it"):
        pretrain.load_data(f"folder:{tmp_path}")
    assert_failure(invoke(f"folder:{tmp_path}", "-l", "rbm:4", "-q"), "bomb.png claims more than")
