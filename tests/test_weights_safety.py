"""Weights files never run code (issue 9 §1), are checked against the hash in their names,
and are read once per process.

The crafted files hold a pickle that creates a marker file when unpickled; each
test first shows that the payload is live (``torch.load(..., weights_only=False)``
creates the marker), so a loader that unpickled it would fail the test.
"""
import os
import pickle
import shutil

import pytest
import torch
import torchvision
from hub_fixtures import hub_folder, offline, publish, torch_home  # noqa: F401 (fixtures)

from finetune.networks.body import torchvision_body
from finetune.networks.backbones import weights as weights_module
from pretrain.core.errors import LayerwiseError

RESNET18 = torchvision.models.ResNet18_Weights.IMAGENET1K_V1


class Payload:
    """Unpickled, it creates the file ``marker`` (what any code an attacker chose could do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture(params=["torch.save", "pickle"])
def crafted(request, tmp_path):
    """A file that creates ``tmp_path/MARKER`` when unpickled: ``(path, marker)``."""
    marker, path = tmp_path / "MARKER", tmp_path / "crafted.pth"
    state = {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.bias": Payload(marker)}
    if request.param == "torch.save":
        torch.save(state, path)
        torch.load(path, weights_only=False)  # the payload is live ...
    else:  # protocol 2, as torch's legacy format: its opcodes pass, its globals are refused
        with open(path, "wb") as stream:
            pickle.dump(state, stream, protocol=2)
        with open(path, "rb") as stream:
            pickle.load(stream)  # the payload is live ...
    assert marker.exists()
    marker.unlink()  # ... and the marker gone before the test proper
    return path, marker


def build(spec):
    """Build the body of ``spec``; the one line it fails with."""
    with pytest.raises(LayerwiseError) as error:
        torchvision_body(spec, (32, 32, 3), input_size=32)
    message = str(error.value)
    assert "\n" not in message and "weights_only=False" not in message
    return message


@pytest.fixture
def no_hub_loading(monkeypatch):
    """torch.hub's unpickling loader, behind torchvision's ``get_state_dict``, is never called."""
    def refused(*args, **kwargs):
        raise AssertionError("load_state_dict_from_url unpickles cached files with weights_only=False")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refused)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refused)


@pytest.fixture
def loads(monkeypatch):
    """The calls to ``torch.load`` (and their ``weights_only``) and to the file hash."""
    calls = {"torch.load": [], "sha256": 0}
    real_load, real_hash = torch.load, weights_module.file_sha256

    def counted_load(*args, **kwargs):
        calls["torch.load"].append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    def counted_hash(path):
        calls["sha256"] += 1
        return real_hash(path)
    monkeypatch.setattr(torch, "load", counted_load)
    monkeypatch.setattr(weights_module, "file_sha256", counted_hash)
    return calls


def test_crafted_cached_file_with_a_true_hash_runs_nothing(crafted, torch_home, offline, monkeypatch, no_hub_loading):
    path, marker = crafted
    shutil.copy(path, hub_folder(torch_home) / "evil.pth")
    cached = publish(monkeypatch, RESNET18, hub_folder(torch_home) / "evil.pth")
    message = build("resnet18")
    assert not marker.exists()
    assert offline == []  # the name's hash matched: the file was read, not downloaded again
    assert str(cached) in message and "holds more than tensors" in message and "delete it" in message


def test_crafted_local_file_runs_nothing(crafted, torch_home, offline):
    path, marker = crafted
    message = build(f"resnet18@{path}")
    assert not marker.exists()
    assert f"weights file {path} holds more than tensors" in message and "torch.save(model.state_dict()" in message


def test_cached_file_with_a_wrong_hash_is_not_read(crafted, torch_home, offline, loads):
    path, marker = crafted
    cached = shutil.copy(path, hub_folder(torch_home) / os.path.basename(RESNET18.url))  # resnet18-f37072fd.pth
    message = build("resnet18@IMAGENET1K_V1")
    assert not marker.exists() and loads["torch.load"] == []
    assert message.startswith(f"{cached} is not the file its name promises")
    assert "expected f37072fd" in message and "delete it" in message and RESNET18.url in message


@pytest.mark.parametrize("content, fix", [
    (b"", "cannot be read (EOFError)"),
    (b"garbage" * 100, "holds more than tensors"),
])
def test_broken_files_give_one_line(tmp_path, content, fix):
    (tmp_path / "broken.pth").write_bytes(content)
    assert fix in build(f"resnet18@{tmp_path / 'broken.pth'}")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    assert "holds a list, not a state dict" in build(f"resnet18@{tmp_path / 'list.pth'}")


def test_each_file_is_read_and_hashed_once(torch_home, offline, monkeypatch, no_hub_loading, loads, tmp_path):
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, hub_folder(torch_home) / "r18.pth")
    publish(monkeypatch, RESNET18, hub_folder(torch_home) / "r18.pth")
    bodies = [torchvision_body("resnet18", (32, 32, 3), input_size=32) for _ in range(2)]
    assert loads == {"torch.load": [True], "sha256": 1}
    for body in bodies:
        assert torch.equal(body.groups[0].group.conv1.weight, state["conv1.weight"])
    bodies[0].groups[0].group.conv1.weight.data.add_(1)  # training one body leaves the weights read for the next
    assert torch.equal(torchvision_body("resnet18", (32, 32, 3), input_size=32).groups[0].group.conv1.weight,
                       state["conv1.weight"])

    local = tmp_path / "mine.pth"
    torch.save(state, local)
    torchvision_body(f"resnet18@{local}", (32, 32, 3), input_size=32)
    torchvision_body(f"resnet18@{local}", (32, 32, 3), input_size=32)
    assert loads == {"torch.load": [True, True], "sha256": 1}  # local files: read once, not hash-checked
    changed = {key: value + 1 if value.is_floating_point() else value for key, value in state.items()}
    torch.save(changed, local)
    os.utime(local, ns=(1, 1))  # another modification time even where the clock is coarse
    body = torchvision_body(f"resnet18@{local}", (32, 32, 3), input_size=32)
    assert len(loads["torch.load"]) == 3 and torch.equal(body.groups[0].group.conv1.weight, changed["conv1.weight"])


def test_missing_file_is_downloaded_into_the_cache_with_its_hash_checked(torch_home, monkeypatch, tmp_path,
                                                                          no_hub_loading):
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, tmp_path / "release.pth")
    release = publish(monkeypatch, RESNET18, tmp_path / "release.pth")
    downloads = []

    def download(url, dst, hash_prefix=None, progress=True):
        downloads.append((url, dst, hash_prefix))
        shutil.copy(release, dst)
    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    body = torchvision_body("resnet18", (32, 32, 3), input_size=32)
    assert downloads == [(RESNET18.url, str(hub_folder(torch_home) / release.name), release.name[9:17])]
    assert torch.equal(body.groups[0].group.conv1.weight, state["conv1.weight"])


def test_files_saved_in_the_legacy_format_load(tmp_path):
    """Older torchvision releases predate torch's zip format; ``weights_only`` reads both."""
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    body = torchvision_body(f"resnet18@{tmp_path / 'legacy.pth'}", (32, 32, 3), input_size=32)
    assert torch.equal(body.groups[0].group.conv1.weight, state["conv1.weight"])
