"""Tests for pretrain.plots: which pictures a stack gets, that they are real PNGs, and the round trip they show."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from matplotlib.image import imread
from sklearn.datasets import load_digits

from pretrain.cli import main
from pretrain.data.specs import load_data
from pretrain.training.greedy import pretrain_stack
from pretrain.plots import mosaic, plot_stack, reconstruct_through

ALL_PICTURES = ["filters.png", "reconstructions.png", "samples.png", "training_curves.png"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A two-layer (rbm, ae) stack pretrained on digits and saved, with its folder."""
    out = tmp_path_factory.mktemp("digits-run")
    stack = pretrain_stack("digits", ["rbm:16", "ae:8"], out, epochs=2, batch_size=50, progress=False)
    return stack, out


def assert_readable_png(path, min_side=300):
    """A PNG that matplotlib reads back, at least ``min_side`` pixels each way, and not one flat colour."""
    image = imread(path)
    assert image.shape[0] >= min_side and image.shape[1] >= min_side, (path.name, image.shape)
    assert image[..., :3].std() > 0.05, f"{path.name} is blank"


def test_an_image_stack_gets_every_picture(digits_run):
    stack, out = digits_run
    state = torch.get_rng_state()
    paths = plot_stack(stack, out, load_data("digits").example_images())
    assert [path.name for path in paths] == ALL_PICTURES
    assert all(path.parent == out / "plots" for path in paths)
    for path in paths:
        assert_readable_png(path)
    assert torch.equal(torch.get_rng_state(), state)


def test_plots_only_redraws_a_saved_stack(digits_run):
    _, out = digits_run
    for path in (out / "plots").glob("*.png"):
        path.unlink()
    result = CliRunner().invoke(main, ["--plots-only", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (out / "plots").glob("*.png")) == ALL_PICTURES
    assert all(name in result.output for name in ALL_PICTURES)


def test_round_trip_goes_up_every_layer_then_down_in_reverse(digits_run):
    stack, _ = digits_run
    x = stack.preprocess(load_digits().images[:20])
    rbm, autoencoder = stack.layers
    with torch.no_grad():
        torch.testing.assert_close(reconstruct_through([rbm], x), rbm.reconstruct(x))
        expected = rbm.decode(autoencoder.decode(autoencoder(rbm(x))))
        torch.testing.assert_close(reconstruct_through([rbm, autoencoder], x), expected)


def test_without_example_images_all_but_the_reconstructions_are_drawn(tmp_path):
    images = load_digits().images  # in memory: no test split to show
    stack = pretrain_stack(images, ["grbm:16"], epochs=2, batch_size=50, progress=False)
    paths = plot_stack(stack, tmp_path)
    assert [path.name for path in paths] == ["filters.png", "samples.png", "training_curves.png"]
    for path in paths:
        assert_readable_png(path)


def test_tabular_data_gets_only_training_curves(tmp_path):
    table = np.random.default_rng(0).random((200, 12)).astype(np.float32)
    stack = pretrain_stack(table, ["ae:4"], epochs=3, batch_size=50, progress=False)
    paths = plot_stack(stack, tmp_path)
    assert [path.name for path in paths] == ["training_curves.png"]
    assert_readable_png(paths[0])


def test_mosaic_tiles_images_row_by_row_on_a_white_grid():
    images = np.arange(5, dtype=float).reshape(5, 1, 1, 1) / 10  # five 1x1 "images" 0.0 .. 0.4
    canvas = mosaic(images, columns=3, pad=1)
    assert canvas.shape == (5, 7, 1)
    assert [canvas[1, 1, 0], canvas[1, 3, 0], canvas[1, 5, 0], canvas[3, 1, 0], canvas[3, 3, 0]] == \
        [0.0, 0.1, 0.2, 0.3, 0.4]
    assert canvas[0].min() == 1.0 and canvas[3, 5, 0] == 1.0  # grid lines and the empty sixth tile
