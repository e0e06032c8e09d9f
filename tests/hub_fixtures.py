"""Fixtures for torchvision weights offline: an empty torch.hub cache, no network, and
files published under the name torchvision gives them.

torchvision names a weights file ``NAME-<first hex digits of its sha256>.pth``
after its URL, and layerwise checks a cached file against that prefix. A test
file (random weights, or a crafted pickle) cannot match the prefix of the real
release, so :func:`publish` stands in for a release: it names the file by its
own sha256, as torchvision does, and points the weights' URL at that name.
"""
import hashlib
import os
import urllib.error
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME that torch.hub uses for its cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a set_dir() elsewhere would override TORCH_HOME
    assert torch.hub.get_dir() == str(tmp_path / "torch" / "hub")
    return tmp_path / "torch"


@pytest.fixture
def offline(monkeypatch):
    """Downloads fail as they do without a network; the URLs tried are recorded."""
    tried = []

    def no_network(url, *args, **kwargs):
        tried.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tried


def publish(monkeypatch, weights, file: Path) -> Path:
    """``file`` renamed ``NAME-<its sha256 prefix>.pth`` and ``weights.url`` pointed at that name."""
    stem = os.path.basename(urlparse(weights.url).path).rsplit("-", 1)[0]
    name = f"{stem}-{hashlib.sha256(file.read_bytes()).hexdigest()[:8]}.pth"
    monkeypatch.setattr(weights.value, "url", f"{weights.url.rsplit('/', 1)[0]}/{name}")  # DEFAULT is an alias
    assert os.path.basename(urlparse(weights.url).path) == name
    return file.rename(file.with_name(name))


def hub_folder(torch_home: Path) -> Path:
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
