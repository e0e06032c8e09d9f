"""Weights of torchvision backbones, read by our code and never unpickled.

torch.hub's ``load_state_dict_from_url`` (behind torchvision's
``WeightsEnum.get_state_dict``) unpickles a file found in its cache with
``weights_only=False`` and checks the hash of downloads only: a file put in
``$TORCH_HOME/hub/checkpoints`` under the expected name runs whatever it
pickles. Here instead:

* every weights file, cached or local, is read with
  ``torch.load(path, map_location="cpu", weights_only=True)``, which builds
  tensors and plain containers only (PyTorch's "Serialization semantics" notes);
* a cached file is first checked against the hash in its name: torchvision
  names its files ``NAME-<first hex digits of the file's sha256>.pth``
  (torch.hub's ``check_hash`` convention), so the file's sha256 must start with them;
* a missing file is downloaded from torchvision's URL into that cache by
  ``torch.hub.download_url_to_file``, which checks the same prefix;
* a file is read (and hashed) once per process while it is unchanged on disk.

Local files are not hash-checked: their names are the user's, not torchvision's.
"""
import functools
import hashlib
import os
import pickle
import re
import sys
from dataclasses import dataclass
from typing import Optional, Tuple
from urllib.parse import urlparse

import torch
from torch import nn

from pretrain.core.errors import LayerwiseError

# torch.hub's naming convention: NAME-<sha256 prefix>.EXT, with eight or more hex digits.
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.[^.]+$")
# How many state dicts stay in memory: one per backbone a comparison uses, with room to spare.
CACHED_STATE_DICTS = 8


def default_weights(name: str):
    import torchvision
    return torchvision.models.get_model_weights(name).DEFAULT


def is_torchvision_weights(weights) -> bool:
    return weights is not None and not isinstance(weights, str)


def resolve_weights(name: str, value: str):
    """``value`` -> a torchvision weights enum member, None (``none``) or a local file path."""
    import torchvision
    if value.lower() == "none":
        return None
    enum = torchvision.models.get_model_weights(name)
    members = {key.upper(): member for key, member in enum.__members__.items()}
    if value.upper() in members:
        return members[value.upper()]
    if os.path.isfile(value) or os.sep in value or "/" in value or value.endswith((".pth", ".pt")):
        return value  # a file, read only when the weights are loaded
    raise LayerwiseError(f"unknown weights '{value}' for {name}: use {', '.join(enum.__members__)}, "
                         "none (random initialisation) or the path of a state-dict file")


def weights_label(weights) -> str:
    if weights is None:
        return "none"
    return weights if isinstance(weights, str) else weights.name


def load_backbone_weights(model: nn.Module, name: str, weights) -> None:
    """Load ``weights`` (see :func:`resolve_weights`) into ``model``, torchvision's ``name``."""
    if weights is None:
        return
    if isinstance(weights, str):
        state, source = local_file(weights).state_dict(), weights
    else:
        state, source = hub_file(name, weights).state_dict(), f"the {weights.name} weights"
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    misshapen = [key for key in expected if key in state and state[key].shape != expected[key].shape]
    if missing or unexpected or misshapen:
        found = ", ".join(f"{len(keys)} {what} (e.g. {keys[0]})" for keys, what in
                          ((missing, "missing"), (unexpected, "unexpected"), (misshapen, "misshapen")) if keys)
        raise LayerwiseError(f"{source} do not fit torchvision's {name}: {found}; "
                             f"give a state dict saved from torchvision.models.{name}()")
    model.load_state_dict(state)  # copies into the parameters: the cached state dict stays as read


@dataclass(frozen=True)
class WeightsFile:
    """A state-dict file to read: its path, the sha256 prefix its content must start with
    (None: not checked), and the remedy a message gives when the file is wrong."""

    path: str
    sha256_prefix: Optional[str]
    remedy: str

    def state_dict(self) -> dict:
        """The file's state dict, read and verified once per process while the file is unchanged.

        Callers only read it (``load_state_dict`` copies): the same dict is handed to each.
        """
        if not os.path.isfile(self.path):
            raise LayerwiseError(f"weights file {self.path} not found: {self.remedy}")
        stat = os.stat(self.path)
        return read_once(self, (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns))


def local_file(path: str) -> WeightsFile:
    return WeightsFile(path, None, "give the path of a state dict saved with torch.save(model.state_dict(), path)")


def hub_file(name: str, weights) -> WeightsFile:
    """torchvision's file for ``weights`` in torch.hub's cache, downloaded there first when missing."""
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    file_name = os.path.basename(urlparse(weights.url).path)
    path = os.path.join(folder, file_name)
    found = HASH_IN_NAME.search(file_name)
    cached = WeightsFile(path, found.group(1) if found else None,
                         f"delete it to download it again, or put the file from {weights.url} there")
    if not os.path.exists(path):
        download(name, weights, cached)
    return cached


def download(name: str, weights, file: WeightsFile) -> None:
    """Download ``weights`` from torchvision's URL to ``file.path``, checking the hash prefix."""
    folder = os.path.dirname(file.path)
    print(f"Downloading {weights.url} to {file.path}", file=sys.stderr)
    try:
        os.makedirs(folder, exist_ok=True)
        torch.hub.download_url_to_file(weights.url, file.path, hash_prefix=file.sha256_prefix, progress=False)
    except OSError as error:  # URLError, timeouts, refused connections: no network; an unwritable cache
        reason = getattr(error, "reason", error)
        raise LayerwiseError(
            f"ImageNet weights for {name} ({weights.name}) are not cached and cannot be downloaded ({reason}): "
            f"put {os.path.basename(file.path)} (from {weights.url}) in {folder}, "
            f"or use torchvision:{name}@none") from None
    except RuntimeError as error:  # download_url_to_file's "invalid hash value"; it keeps no file
        raise LayerwiseError(f"the download of {weights.url} does not match the hash in its name "
                             f"({error}): try again, or put the file there by hand") from None


@functools.lru_cache(maxsize=CACHED_STATE_DICTS)
def read_once(file: WeightsFile, identity: Tuple[int, ...]) -> dict:
    """:func:`read_state_dict` of ``file``, remembered by the file's ``identity`` (device, inode,
    size, modification time): a file changed on disk is read again."""
    if file.sha256_prefix is not None:
        check_sha256(file)
    return read_state_dict(file)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(file: WeightsFile) -> None:
    """The file's sha256 must start with the prefix in its name (torch.hub's ``check_hash``)."""
    found = file_sha256(file.path)[:len(file.sha256_prefix)]
    if found != file.sha256_prefix:
        raise LayerwiseError(f"{file.path} is not the file its name promises (sha256 {found}..., "
                             f"expected {file.sha256_prefix}...): {file.remedy}")


def read_state_dict(file: WeightsFile) -> dict:
    """The tensors of ``file``, unpickled by ``weights_only=True``: no object of the file's choosing is built."""
    try:
        state = torch.load(file.path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises pickle, zip and runtime errors alike for a foreign file
        what = ("holds more than tensors (pickled objects, which layerwise never loads, or damaged bytes)"
                if isinstance(error, pickle.UnpicklingError) else f"cannot be read ({type(error).__name__})")
        raise LayerwiseError(f"weights file {file.path} {what}: {file.remedy}") from None
    if not isinstance(state, dict):
        raise LayerwiseError(f"weights file {file.path} holds a {type(state).__name__}, not a state dict: "
                             f"{file.remedy}")
    return state
