"""Tests for pretrain.data.specs: every spec kind, the held-out split, and each user mistake."""
import gzip
import os

import numpy as np
import pytest
from PIL import Image

from pretrain.data.specs import Dataset, describe_specs, load_data
from pretrain.data.readers import read_idx
from pretrain.core.errors import LayerwiseError, UsageMistake

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}


def write_idx(path, array):
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in .gz), independently of the reader."""
    header = bytes([0, 0, _IDX_CODES[array.dtype], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if str(path).endswith(".gz") else open)(path, "wb") as f:
        f.write(payload)


def fake_mnist(rng, n):
    """Random uint8 images [n,28,28] and labels 0..9."""
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def write_mnist_files(folder, rng, gz_suffixes=("", "", "", "")):
    """Write the four MNIST-layout files into ``folder``; return the arrays written."""
    os.makedirs(folder, exist_ok=True)
    arrays = [*fake_mnist(rng, 12), *fake_mnist(rng, 5)]
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    for name, suffix, array in zip(names, gz_suffixes, arrays):
        write_idx(os.path.join(folder, name + suffix), array)
    return arrays


def save_image(path, array):
    """Save a uint8 array as an image file, creating its folder."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


# --- digits and the held-out split ---------------------------------------------------

def test_digits_shapes_and_stratified_split():
    data = load_data("digits")
    assert data.x_train.shape == (1437, 8, 8) and data.x_test.shape == (360, 8, 8)
    assert data.x_train.max() == 16 and data.y_train.dtype == np.int64
    assert data.is_image and data.image_shape == (8, 8, 1) and data.n_classes == 10
    assert data.classes is None and data.class_names == list(range(10))  # digits' classes are its label values
    # stratified: each class keeps its share of the test split to within one example
    all_y = np.concatenate([data.y_train, data.y_test])
    expected = np.bincount(all_y) * 0.2
    assert np.all(np.abs(np.bincount(data.y_test) - expected) <= 1)
    assert data.pretraining_images() is data.x_train


def test_split_seed_fixes_the_held_out_examples():
    def test_rows(seed):
        data = load_data("digits", split_seed=seed)
        return {row.tobytes() for row in data.x_test}, {row.tobytes() for row in data.x_train}

    test_a, train_a = test_rows(0)
    test_b, _ = test_rows(0)
    test_c, _ = test_rows(1)
    assert test_a == test_b
    assert test_a != test_c
    assert not test_a & train_a


def test_test_fraction_is_used_and_checked():
    assert len(load_data("digits", test_fraction=0.5).x_test) == 899
    with pytest.raises(LayerwiseError, match="test_fraction"):
        load_data("digits", test_fraction=1.5)


# --- IDX ---------------------------------------------------------------------------------

@pytest.mark.parametrize("suffixes", [("", "", "", ""), (".gz", ".gz", ".gz", ".gz"), (".gz", "", "", ".gz")])
def test_idx_round_trip(tmp_path, suffixes):
    x_train, y_train, x_test, y_test = write_mnist_files(tmp_path, np.random.default_rng(0), suffixes)
    data = load_data(f"idx:{tmp_path}")
    np.testing.assert_array_equal(data.x_train, x_train)
    np.testing.assert_array_equal(data.y_train, y_train)
    np.testing.assert_array_equal(data.x_test, x_test)
    np.testing.assert_array_equal(data.y_test, y_test)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64


@pytest.mark.parametrize("dtype", [np.int32, np.float32])
def test_idx_reads_wider_types_big_endian(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) * 1000 - 5000).astype(dtype)
    write_idx(tmp_path / "a.idx", array)
    read = read_idx(str(tmp_path / "a.idx"))
    assert read.dtype == dtype
    np.testing.assert_array_equal(read, array)


def test_idx_missing_files_and_bad_files(tmp_path):
    with pytest.raises(LayerwiseError, match="idx folder .* not found"):
        load_data(f"idx:{tmp_path / 'nope'}")
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(LayerwiseError, match="lacks train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                                             "t10k-labels-idx1-ubyte: put these MNIST-layout"):
        load_data(f"idx:{tmp_path}")
    write_mnist_files(tmp_path, np.random.default_rng(0))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")
    with pytest.raises(LayerwiseError, match="truncated"):
        load_data(f"idx:{tmp_path}")
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01")[:-6])
    with pytest.raises(LayerwiseError, match="cannot read .*valid IDX file"):
        load_data(f"idx:{tmp_path}")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"PK\x03\x04 not idx"))
    with pytest.raises(LayerwiseError, match="not an IDX file"):
        load_data(f"idx:{tmp_path}")


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST), reason=f"{FASHION_MNIST} not on this machine")
def test_idx_real_fashion_mnist():
    data = load_data(f"idx:{FASHION_MNIST}")
    assert data.x_train.shape == (60000, 28, 28) and data.x_test.shape == (10000, 28, 28)
    assert data.n_classes == 10


# --- torchvision datasets ----------------------------------------------------------------

def test_torchvision_mnist_loads_from_raw_folder(tmp_path):
    x_train, y_train, x_test, y_test = write_mnist_files(tmp_path / "MNIST" / "raw", np.random.default_rng(1))
    data = load_data("mnist", data_dir=str(tmp_path), download=False)
    np.testing.assert_array_equal(data.x_train, x_train)
    np.testing.assert_array_equal(data.y_test, y_test)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert len(data.classes) == 10


@pytest.mark.parametrize("spec, hint", [
    ("mnist", "train-images-idx3-ubyte, .* in .*MNIST/raw"),
    ("fashion-mnist", "FashionMNIST/raw"),
    ("cifar10", "extract cifar-10-python.tar.gz .*cifar-10-batches-py exists"),
    ("svhn", "train_32x32.mat and test_32x32.mat"),
    ("stl10", "stl10_binary exists"),
])
def test_torchvision_missing_files_say_where_to_put_them(tmp_path, spec, hint):
    with pytest.raises(LayerwiseError, match=f"downloading is off: .*{hint}") as info:
        load_data(spec, data_dir=str(tmp_path), download=False)
    assert "\n" not in str(info.value)


def test_torchvision_failed_download_is_one_line_error(tmp_path, monkeypatch):
    from urllib.error import URLError

    import torchvision.datasets

    def offline(self):
        raise URLError("no network")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(LayerwiseError, match="download failed \\(URLError\\): put .*MNIST/raw"):
        load_data("mnist", data_dir=str(tmp_path), download=True)


def test_data_dir_defaults_to_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERWISE_DATA", str(tmp_path / "env"))
    with pytest.raises(LayerwiseError, match=str(tmp_path / "env")):
        load_data("kmnist", download=False)


# --- npz ---------------------------------------------------------------------------------

def test_npz_x_and_y_gets_a_held_out_split(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    y = np.repeat([0, 1], 20)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_data(f"npz:{tmp_path / 'd.npz'}")
    assert data.x_train.shape == (32, 5) and data.x_test.shape == (8, 5)
    assert not data.is_image and data.image_shape is None
    assert np.bincount(data.y_test).tolist() == [4, 4]


def test_npz_unlabeled_x_has_no_test_split(tmp_path):
    x = np.zeros((6, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x)
    data = load_data(f"npz:{tmp_path / 'd.npz'}")
    assert data.y_train is None and data.x_test is None and data.image_shape == (4, 4, 3)
    with pytest.raises(LayerwiseError, match="no labels"):
        data.n_classes


def test_npz_explicit_splits(tmp_path):
    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.random((7, 3, 3)), y_train=np.arange(7) % 3,
                  x_test=rng.random((2, 3, 3)), y_test=np.array([0, 4]))
    np.savez(tmp_path / "d.npz", **arrays)
    data = load_data(f"npz:{tmp_path / 'd.npz'}")
    for key, value in arrays.items():
        np.testing.assert_array_equal(getattr(data, key), value)
    assert data.n_classes == 5


@pytest.mark.parametrize("arrays, message", [
    (dict(images=np.zeros((3, 2))), "missing x_train, y_train, x_test, y_test"),
    (dict(x_train=np.zeros((3, 2)), y_train=np.zeros(3)), "missing x_test, y_test"),
    (dict(x=np.zeros((3, 2)), y=np.zeros(4)), "3 examples but labels of shape \\(4,\\)"),
    (dict(x=np.zeros((3, 2)), y=np.array([0.5, 1, 2])), "class indices"),
    (dict(x=np.zeros((3, 3, 8, 8))), "channels-first"),
    (dict(x_train=np.zeros((3, 2)), y_train=np.zeros(3), x_test=np.zeros((1, 4)), y_test=np.zeros(1)),
     "its test examples are 4 but its training examples 2: give every split the same shape"),
])
def test_npz_bad_contents(tmp_path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(LayerwiseError, match=message):
        load_data(f"npz:{tmp_path / 'd.npz'}")


def test_npz_missing_or_not_npz(tmp_path):
    with pytest.raises(LayerwiseError, match="not found"):
        load_data(f"npz:{tmp_path / 'nope.npz'}")
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(LayerwiseError, match="not an .npz archive"):
        load_data(f"npz:{tmp_path / 'a.npy'}")
    np.savez(tmp_path / "objects.npz", x=np.array([{}, None], dtype=object))
    with pytest.raises(LayerwiseError, match="cannot read .*numeric arrays"):
        load_data(f"npz:{tmp_path / 'objects.npz'}")


# --- specs and the Dataset contract ------------------------------------------------------

@pytest.mark.parametrize("spec", ["foo", "idx:", "csv:data.csv", ""])
def test_unknown_spec_lists_valid_ones(spec):
    with pytest.raises(LayerwiseError, match="unknown data .*digits, mnist.*npz:FILE, npy:FILE or folder:DIR"):
        load_data(spec)


def test_pretraining_images_adds_unlabeled_never_test():
    data = Dataset("s", np.zeros((3, 2, 2)), np.zeros(3, np.int64), np.ones((2, 2, 2)), np.zeros(2, np.int64),
                   x_unlabeled=np.full((4, 2, 2), 2.0))
    images = data.pretraining_images()
    assert images.shape == (7, 2, 2) and not np.any(images == 1)


def write_mismatched_idx(folder, train=(8, 8), test=(6, 6)):
    """An idx folder whose test images are ``test`` pixels, its training images ``train`` (issue 30, item 16)."""
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    for name, array in (("train-images-idx3-ubyte", rng.integers(0, 256, (40, *train), dtype=np.uint8)),
                        ("train-labels-idx1-ubyte", (np.arange(40) % 2).astype(np.uint8)),
                        ("t10k-images-idx3-ubyte", rng.integers(0, 256, (10, *test), dtype=np.uint8)),
                        ("t10k-labels-idx1-ubyte", (np.arange(10) % 2).astype(np.uint8))):
        write_idx(os.path.join(folder, name), array)
    return f"idx:{folder}"


def test_splits_of_another_shape_are_refused_as_they_load(tmp_path):
    spec = write_mismatched_idx(tmp_path / "idx")
    with pytest.raises(UsageMistake, match=f"^'{spec}': its test examples are 6x6 but its training examples 8x8: "
                                           "give every split the same shape$"):
        load_data(spec)
    with pytest.raises(UsageMistake, match="its unlabeled examples are 4x4x3 but its training examples 4x4: "):
        Dataset("s", np.zeros((3, 4, 4)), None, None, None, x_unlabeled=np.zeros((2, 4, 4, 3)))


def test_describe_specs_names_every_kind():
    text = describe_specs()
    for spec in ("digits", "mnist", "fashion-mnist", "kmnist", "cifar10", "svhn", "stl10",
                 "idx:DIR", "npz:FILE", "folder:DIR"):
        assert spec in text
