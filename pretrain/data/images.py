"""Image files decoded in batches by a DataLoader, in worker processes for large folders.

Headers come first (PIL reads size and mode without decoding pixels), so a
folder of mixed sizes, an unreadable file or a decompression bomb is refused
before any pixel is decoded and before memory is spent; then a torch
``DataLoader`` decodes the files in batches (in ``workers`` processes once a
folder is large enough to pay for starting them) into one preallocated
``uint8`` array, never holding a decoded image twice.

A file that fails to decode comes back from a worker as a value, not raised
there: torch wraps an exception raised in a worker into one whose message is
the worker's whole traceback, so the error is raised here, as the same one
line a folder decoded in this process gives.

16-bit grey images (PNG's ``I;16``) are scaled by their range, 65535 to 255:
PIL's own conversion clips them to {0, 255}.
"""
import os
from typing import List, Optional, Tuple, Union

import numpy as np

from ..core.errors import LayerwiseError

#: PIL modes read as grayscale; anything else is converted to RGB.
GRAY_MODES = ("1", "L", "LA", "I;16", "I;16B", "I;16L", "I;16N")
#: PIL modes of 32-bit pixels, whose range no header states: refused rather than guessed.
WIDE_MODES = ("I", "F")
#: below this many files one process decodes them (starting workers costs more than it saves).
WORKER_THRESHOLD = 2000
BATCH = 256


def read_headers(files: List[str]) -> Tuple[Tuple[int, int], str]:
    """The common ``(width, height)`` of ``files`` and the mode to decode them in ("L" or "RGB")."""
    from PIL import Image
    sizes, modes = [], []
    for path in files:
        try:
            with Image.open(path) as image:  # reads the header only
                sizes.append(image.size)
                modes.append(image.mode)
        except Image.DecompressionBombError:
            raise LayerwiseError(f"image {path} claims more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels in its header "
                                 "(a decompression bomb or a corrupt file): remove it or resize it") from None
        except OSError as err:
            raise LayerwiseError(f"cannot read image {path} ({err}): fix or remove it") from None
        if modes[-1] in WIDE_MODES:
            raise LayerwiseError(f"image {path} has 32-bit pixels (PIL mode {modes[-1]}), whose range is not known: "
                                 "convert it to 8 or 16 bits first")
        if sizes[-1] != sizes[0]:
            raise LayerwiseError(f"images differ in size: {files[0]} is {sizes[0][0]}x{sizes[0][1]} but {path} is "
                                 f"{sizes[-1][0]}x{sizes[-1][1]}; resize them all to one size first")
    return sizes[0], "L" if all(mode in GRAY_MODES for mode in modes) else "RGB"


class ImageFiles:
    """``files[i]`` decoded to a ``uint8`` array in ``mode`` (a map-style dataset for ``DataLoader``)."""

    def __init__(self, files: List[str], mode: str):
        self.files, self.mode = files, mode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Union[np.ndarray, LayerwiseError]:
        """The decoded image, or the error naming the file (returned: see the module docstring)."""
        from PIL import Image
        path = self.files[index]
        try:
            with Image.open(path) as image:
                return decode(image, self.mode)
        except OSError as err:  # a header that read well over a body that does not
            return LayerwiseError(f"cannot read image {path} ({err}): fix or remove it")


def decode(image, mode: str) -> np.ndarray:
    """``image`` as ``uint8`` pixels in ``mode``, 16-bit grey scaled by its range (65535 is 255)."""
    if not image.mode.startswith("I;16"):
        return np.asarray(image.convert(mode), dtype=np.uint8)
    grey = np.round(np.asarray(image, dtype=np.float64) / 257).astype(np.uint8)
    return grey if mode == "L" else np.repeat(grey[..., None], 3, axis=2)


def stack(items: List[Union[np.ndarray, LayerwiseError]]) -> Union[np.ndarray, LayerwiseError]:
    """A batch of decoded images as one array, or the first error among them (the ``DataLoader``'s collate)."""
    errors = [item for item in items if isinstance(item, LayerwiseError)]
    return errors[0] if errors else np.stack(items)


def default_workers(n_files: int) -> int:
    """Worker processes for ``n_files``: none for small folders, else one per core (at most 8)."""
    return 0 if n_files < WORKER_THRESHOLD else min(8, os.cpu_count() or 1)


def read_images(files: List[str], workers: Optional[int] = None) -> np.ndarray:
    """Stack image files into uint8 ``[N,H,W]`` (all grayscale) or ``[N,H,W,3]``.

    A folder mixing grayscale and colour becomes RGB; alpha is dropped. Sizes must
    match: we refuse to resize, since interpolation and cropping are the user's choice.
    """
    from torch.utils.data import DataLoader
    (width, height), mode = read_headers(files)
    out = np.empty((len(files), height, width) + ((3,) if mode == "RGB" else ()), dtype=np.uint8)
    workers = default_workers(len(files)) if workers is None else workers
    loader = DataLoader(ImageFiles(files, mode), batch_size=BATCH, num_workers=workers, collate_fn=stack)
    for start, batch in zip(range(0, len(files), BATCH), loader):
        if isinstance(batch, LayerwiseError):
            raise batch
        out[start:start + len(batch)] = batch
    return out
