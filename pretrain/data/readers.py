"""Readers of each data-spec kind: torchvision datasets, IDX files, npz archives, npy memory maps, image folders.

Each returns a :class:`~pretrain.data.dataset.Dataset` of raw arrays; labeled data
without a test split of its own gets a stratified one drawn with ``split_seed``.
Heavy libraries (torchvision, scikit-learn, PIL) are imported inside the
readers that need them, so importing this module (and ``--help``) stays fast.
"""
import gzip
import os
import zipfile

import numpy as np

from pretrain.data.dataset import Dataset
from pretrain.core.errors import LayerwiseError
from pretrain.data.images import read_images

#: spec -> torchvision.datasets class name
TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST",
                "cifar10": "CIFAR10", "svhn": "SVHN", "stl10": "STL10"}
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# IDX type codes (third magic byte); values are stored big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def with_test_split(spec, x, y, classes, split_seed, test_fraction) -> Dataset:
    """Wrap data that has no test split; labeled data gets a stratified held-out one."""
    if y is None:
        return Dataset(spec, x, None, None, None, classes=classes)
    from sklearn.model_selection import train_test_split
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=test_fraction, stratify=y, random_state=split_seed)
    except ValueError as err:
        raise LayerwiseError(f"cannot hold out a stratified {test_fraction:g} test split of '{spec}': "
                             f"{err} Add examples per class or change test_fraction.") from None
    return Dataset(spec, x_train, y_train, x_test, y_test, classes=classes, split_seed=split_seed)


def _check_x(x: np.ndarray, where: str) -> np.ndarray:
    """Check ``x`` is a non-empty numeric [N,D], [N,H,W] or channels-last [N,H,W,C] array."""
    if x.dtype.kind not in "iuf" or x.ndim not in (2, 3, 4) or len(x) == 0:
        raise LayerwiseError(f"{where}: x has shape {x.shape} and dtype {x.dtype}; "
                             "save numbers shaped [N,D], [N,H,W] or [N,H,W,C]")
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[3] not in (1, 3, 4):
        raise LayerwiseError(f"{where}: x of shape {x.shape} looks channels-first; "
                             "save it channels-last with x.transpose(0, 2, 3, 1)")
    return x


def _check_labels(x: np.ndarray, y: np.ndarray, where: str) -> np.ndarray:
    """Return ``y`` as int64 after checking it gives each row of ``x`` a class index 0..K-1."""
    if y.ndim != 1 or len(y) != len(x):
        raise LayerwiseError(f"{where}: {len(x)} examples but labels of shape {y.shape}; "
                             "give exactly one label per example")
    integral = y.dtype.kind in "iu" or (y.dtype.kind == "f" and np.all(y == np.round(y)))
    if not integral or y.min() < 0:
        raise LayerwiseError(f"{where}: labels must be class indices 0..K-1; map them to integers first")
    return y.astype(np.int64)


def load_torchvision(spec: str, name: str, root: str, download: bool) -> Dataset:
    """Load a torchvision dataset's splits from ``root`` (downloading if allowed) as numpy."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, TORCHVISION[name])
    train = _torchvision_split(cls, name, root, "train", download)
    test = _torchvision_split(cls, name, root, "test", download)
    x_unlabeled = None
    if name == "stl10":
        x_unlabeled, _ = _torchvision_arrays(_torchvision_split(cls, name, root, "unlabeled", download))
    x_train, y_train = _torchvision_arrays(train)
    x_test, y_test = _torchvision_arrays(test)
    classes = getattr(train, "classes", None)
    return Dataset(spec, x_train, y_train, x_test, y_test, x_unlabeled,
                   list(classes) if classes else None)


def _torchvision_split(cls, name: str, root: str, split: str, download: bool):
    """Construct one split offline first; download only when its files are missing."""
    kwargs = {"split": split} if cls.__name__ in ("SVHN", "STL10") else {"train": split == "train"}
    try:
        return cls(root, download=False, **kwargs)
    except RuntimeError:  # torchvision's "Dataset not found or corrupted"
        if not download:
            raise LayerwiseError(f"{name} not found in {root} and downloading is off: "
                                 f"{_placement_hint(cls, root)}") from None
    try:
        return cls(root, download=True, **kwargs)
    except (RuntimeError, OSError) as err:  # URLError and socket errors are OSErrors
        raise LayerwiseError(f"{name} not found in {root} and the download failed "
                             f"({type(err).__name__}): {_placement_hint(cls, root)}") from None


def _placement_hint(cls, root: str) -> str:
    """Which files to put where so torchvision finds the dataset without a download."""
    if hasattr(cls, "resources"):  # MNIST family: unpacked IDX files in <root>/<Class>/raw
        files = ", ".join(os.path.splitext(f)[0] for f, _ in cls.resources)
        return f"put {files} in {os.path.join(root, cls.__name__, 'raw')} (or use idx:DIR)"
    if cls.__name__ == "SVHN":
        return f"put train_32x32.mat and test_32x32.mat in {root}"
    return f"extract {cls.filename} into {root} so that {os.path.join(root, cls.base_folder)} exists"


def _torchvision_arrays(ds):
    """``(images [N,H,W(,C)], int64 labels)`` from a torchvision dataset object."""
    x = np.asarray(ds.data)
    if type(ds).__name__ in ("SVHN", "STL10"):  # these store [N,C,H,W]
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    labels = ds.targets if hasattr(ds, "targets") else ds.labels
    return x, np.asarray(labels, dtype=np.int64)


def read_idx(path: str) -> np.ndarray:
    """Read one IDX file (gzipped if the name ends in .gz) into a native-endian array.

    Format (LeCun's MNIST page): two zero bytes, a type code, the number of dimensions,
    one big-endian int32 per dimension, then the values big-endian in C order.
    """
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:  # EOFError: a truncated .gz
        raise LayerwiseError(f"cannot read {path} ({err}): replace it with a valid IDX file") from None
    ndim = raw[3] if len(raw) >= 4 else 0
    if len(raw) < 4 + 4 * ndim or raw[0] or raw[1] or raw[2] not in _IDX_DTYPES:
        raise LayerwiseError(f"{path} is not an IDX file (bad header): replace it with the MNIST-layout file")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(dims)) * dtype.itemsize:
        raise LayerwiseError(f"{path} is truncated: header says {dims} but the size differs; re-extract it")
    return np.frombuffer(raw, dtype, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))


def load_idx(spec: str, folder: str) -> Dataset:
    """Load the four MNIST-layout IDX files (each optionally .gz) from ``folder``."""
    if not os.path.isdir(folder):
        raise LayerwiseError(f"idx folder {folder} not found: check the path after 'idx:'")
    found = {name: [p for p in (os.path.join(folder, name), os.path.join(folder, name + ".gz"))
                    if os.path.isfile(p)] for name in _IDX_FILES}
    missing = [name for name, candidates in found.items() if not candidates]
    if missing:
        raise LayerwiseError(f"{folder} lacks {', '.join(missing)}: put these MNIST-layout "
                             "IDX files (or their .gz) there")
    paths = [candidates[0] for candidates in found.values()]
    x_train, y_train, x_test, y_test = (read_idx(p) for p in paths)
    return Dataset(spec, _check_x(x_train, paths[0]), _check_labels(x_train, y_train, paths[1]),
                   _check_x(x_test, paths[2]), _check_labels(x_test, y_test, paths[3]))


def load_npz(spec: str, path: str, split_seed: int, test_fraction: float) -> Dataset:
    """Load ``x`` (and ``y``), or ``x_train, y_train, x_test, y_test``, from an .npz file."""
    if not os.path.isfile(path):
        raise LayerwiseError(f"npz file {path} not found: check the path after 'npz:'")
    if not zipfile.is_zipfile(path):  # an .npz is a zip archive; .npy and text files are not
        raise LayerwiseError(f"{path} is not an .npz archive: save it with numpy.savez(path, x=..., y=...)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise LayerwiseError(f"cannot read {path} ({err}): save plain numeric arrays "
                             "with numpy.savez(path, x=..., y=...)") from None
    if "x" in arrays:
        x = _check_x(arrays["x"], path)
        y = _check_labels(x, arrays["y"], path) if "y" in arrays else None
        return with_test_split(spec, x, y, None, split_seed, test_fraction)
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise LayerwiseError(f"{path} has keys {sorted(arrays)} (missing {', '.join(missing)}): "
                             "save x (and optional y), or x_train, y_train, x_test, y_test")
    x_train, x_test = _check_x(arrays["x_train"], path), _check_x(arrays["x_test"], path)
    return Dataset(spec, x_train, _check_labels(x_train, arrays["y_train"], f"{path} y_train"),
                   x_test, _check_labels(x_test, arrays["y_test"], f"{path} y_test"))


def load_npy(spec: str, path: str) -> Dataset:
    """Memory-map an array ``[N, ...]`` from a .npy file: unlabeled data read a batch at a time, never whole."""
    if not os.path.isfile(path):
        raise LayerwiseError(f"npy file {path} not found: check the path after 'npy:'")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise LayerwiseError(f"cannot read {path} ({err}): save one numeric array with numpy.save(path, x)") from None
    if not isinstance(x, np.ndarray):  # an .npz archive loads as a dict of arrays
        raise LayerwiseError(f"{path} is not an .npy array: save one array with numpy.save(path, x), or use npz:")
    return Dataset(spec, _check_x(x, path), None, None, None)


def _image_files(folder: str) -> list:
    """Image files directly in ``folder``, sorted by name (hidden files skipped)."""
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if not f.startswith(".") and f.lower().endswith(_IMAGE_EXTS))


def load_folder(spec: str, root: str, split_seed: int, test_fraction: float) -> Dataset:
    """Load an image folder: one subfolder per class (labels, classes sorted by name),
    or, when there are no subfolders, a flat folder of unlabeled images.

    With subfolders present, images lying directly in ``root`` are ignored, as in
    torchvision's ImageFolder.
    """
    if not os.path.isdir(root):
        raise LayerwiseError(f"image folder {root} not found: check the path after 'folder:'")
    classes = sorted(d for d in os.listdir(root)
                     if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    if not classes:
        files = _image_files(root)
        if not files:
            raise LayerwiseError(f"no images in {root}: add .png/.jpg files "
                                 "(in one subfolder per class for labeled data)")
        return with_test_split(spec, read_images(files), None, None, split_seed, test_fraction)
    per_class = [_image_files(os.path.join(root, c)) for c in classes]
    empty = [c for c, files in zip(classes, per_class) if not files]
    if empty:
        raise LayerwiseError(f"class folder(s) {', '.join(empty)} in {root} hold no images: "
                             "add .png/.jpg files or remove the folder(s)")
    y = np.repeat(np.arange(len(classes), dtype=np.int64), [len(files) for files in per_class])
    x = read_images([f for files in per_class for f in files])
    return with_test_split(spec, x, y, classes, split_seed, test_fraction)
