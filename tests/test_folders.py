"""Image folders as data (``folder:DIR``): labeled by subfolder or flat and unlabeled, their mistakes in one
line, and decoding by DataLoader workers."""
import os

import numpy as np
import pytest
from PIL import Image

from pretrain.core.errors import LayerwiseError
from pretrain.data.specs import load_data

from test_data import save_image


def test_labeled_folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cat", "ant"):
        for i in range(5):
            save_image(str(tmp_path / cls / f"{i}.png"), rng.integers(0, 256, (6, 7, 3), dtype=np.uint8))
    data = load_data(f"folder:{tmp_path}")
    assert data.classes == ["ant", "cat"]
    assert data.x_train.shape == (8, 6, 7, 3) and data.x_test.shape == (2, 6, 7, 3)
    assert data.x_train.dtype == np.uint8 and sorted(data.y_test.tolist()) == [0, 1]
    # the pixels survive exactly (PNG is lossless)
    first = np.asarray(Image.open(tmp_path / "ant" / "0.png"))
    assert any(np.array_equal(first, img) for img in np.concatenate([data.x_train, data.x_test]))


def test_flat_folder_is_unlabeled_grayscale(tmp_path):
    for i in range(3):
        save_image(str(tmp_path / f"{i}.png"), np.full((4, 5), i * 10, dtype=np.uint8))
    data = load_data(f"folder:{tmp_path}")
    assert data.y_train is None and data.x_test is None
    assert data.x_train.shape == (3, 4, 5) and data.image_shape == (4, 5, 1)
    np.testing.assert_array_equal(data.x_train[:, 0, 0], [0, 10, 20])


def test_folder_mistakes(tmp_path):
    with pytest.raises(LayerwiseError, match="not found"):
        load_data(f"folder:{tmp_path / 'nope'}")
    with pytest.raises(LayerwiseError, match="no images"):
        load_data(f"folder:{tmp_path}")
    save_image(str(tmp_path / "a.png"), np.zeros((4, 4), dtype=np.uint8))
    save_image(str(tmp_path / "b.png"), np.zeros((5, 4), dtype=np.uint8))
    with pytest.raises(LayerwiseError, match="differ in size.*resize"):
        load_data(f"folder:{tmp_path}")
    os.makedirs(tmp_path / "empty_class")
    with pytest.raises(LayerwiseError, match="empty_class .*hold no images"):
        load_data(f"folder:{tmp_path}")


def test_folder_class_with_one_image_cannot_be_stratified(tmp_path):
    save_image(str(tmp_path / "a" / "0.png"), np.zeros((4, 4), dtype=np.uint8))
    for i in range(4):
        save_image(str(tmp_path / "b" / f"{i}.png"), np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(LayerwiseError, match="stratified"):
        load_data(f"folder:{tmp_path}")


def test_a_large_folder_is_decoded_by_dataloader_workers_as_one_process_would(tmp_path, monkeypatch):
    """Worker processes decode the images in batches; the array equals the one-process decode, in order."""
    import pretrain.data.images as images
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(40):
            Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).save(tmp_path / label / f"{i:03d}.png")
    files = sorted(str(p) for p in tmp_path.glob("*/*.png"))
    one = images.read_images(files, workers=0)
    two = images.read_images(files, workers=2)
    assert one.shape == (80, 6, 5, 3) and np.array_equal(one, two)
    monkeypatch.setattr(images, "WORKER_THRESHOLD", 10)  # the folder spec takes workers past the threshold
    assert images.default_workers(len(files)) >= 1
    data = load_data(f"folder:{tmp_path}")
    assert np.array_equal(np.sort(np.concatenate([data.x_train, data.x_test]).reshape(80, -1), axis=0),
                          np.sort(one.reshape(80, -1), axis=0))


def truncated_folder(root, n=30):
    """``n`` random 8x8 grey PNGs in two classes under ``root``, the last one cut to half its bytes."""
    rng = np.random.default_rng(0)
    for i in range(n):
        save_image(str(root / "ab"[i % 2] / f"{i:03d}.png"), rng.integers(0, 256, (8, 8), dtype=np.uint8))
    last = root / "ab"[(n - 1) % 2] / f"{n - 1:03d}.png"
    last.write_bytes(last.read_bytes()[:len(last.read_bytes()) // 2])
    return last


def test_a_file_a_worker_cannot_decode_is_the_same_line_as_in_process(tmp_path):
    """torch wraps what a worker raises in the worker's traceback: the error comes back as a value instead."""
    import pretrain.data.images as images
    last = truncated_folder(tmp_path)
    files = sorted(str(p) for p in tmp_path.glob("*/*.png"))
    messages = []
    for workers in (0, 1):
        with pytest.raises(LayerwiseError) as caught:
            images.read_images(files, workers=workers)
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and messages[0].startswith(f"cannot read image {last} (")


def test_a_worker_error_reaches_the_command_as_one_line(tmp_path, monkeypatch):
    from click.testing import CliRunner
    import pretrain.data.images as images
    from cli_checks import assert_failure
    from pretrain.cli import main
    last = truncated_folder(tmp_path / "data")
    monkeypatch.setattr(images, "WORKER_THRESHOLD", 10)
    result = CliRunner().invoke(main, [f"folder:{tmp_path / 'data'}", "-l", "rbm:4", "-o", str(tmp_path / "run"), "-q"])
    assert_failure(result, f"cannot read image {last} (")
    assert "DataLoader" not in result.output and not (tmp_path / "run").exists()


def test_16_bit_grey_is_scaled_by_its_range(tmp_path):
    """16 grey levels 0, 4369, ..., 65535 in (PIL's I;16): 0, 17, ..., 255 out, beside an 8-bit grey file."""
    from pretrain.data.images import read_images
    levels = np.arange(16, dtype=np.uint16).reshape(4, 4) * 4369
    Image.fromarray(levels).save(tmp_path / "wide.png")
    assert Image.open(tmp_path / "wide.png").mode == "I;16"
    save_image(str(tmp_path / "narrow.png"), np.full((4, 4), 7, dtype=np.uint8))
    grey = read_images([str(tmp_path / "wide.png"), str(tmp_path / "narrow.png")])
    np.testing.assert_array_equal(grey[0], levels // 257)
    assert grey.shape == (2, 4, 4) and (grey[1] == 7).all()


def test_16_bit_grey_beside_colour_is_scaled_in_every_channel(tmp_path):
    from pretrain.data.images import read_images
    levels = np.arange(16, dtype=np.uint16).reshape(4, 4) * 4369
    Image.fromarray(levels).save(tmp_path / "wide.png")
    save_image(str(tmp_path / "colour.png"), np.zeros((4, 4, 3), dtype=np.uint8))
    rgb = read_images([str(tmp_path / "wide.png"), str(tmp_path / "colour.png")])
    assert rgb.shape == (2, 4, 4, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[0, ..., channel], levels // 257)


def test_32_bit_pixels_are_refused_in_one_line(tmp_path):
    from pretrain.data.images import read_images
    Image.fromarray(np.zeros((4, 4), np.float32)).save(tmp_path / "wide.tif")
    with pytest.raises(LayerwiseError, match=r"wide.tif has 32-bit pixels \(PIL mode F\), whose range is not known"):
        read_images([str(tmp_path / "wide.tif")])
