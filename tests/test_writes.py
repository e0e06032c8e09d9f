"""Writing artifacts: a path that cannot be written is one line naming the fix, found before training,
and a failed write leaves nothing behind."""
import errno
import os

import pytest
import torch

from pretrain.core.errors import LayerwiseError
from pretrain.core.io import check_writable, save_artifact

from test_artifacts import small_stack


def test_save_into_a_path_below_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LayerwiseError, match="a file is in the way") as error:
        small_stack().save(tmp_path / "file" / "run")
    assert "\n" not in str(error.value) and str(tmp_path / "file") in str(error.value)


def test_an_overlong_name_is_one_line(tmp_path):
    with pytest.raises(LayerwiseError, match="choose a shorter path"):
        save_artifact({}, tmp_path / ("x" * 300) / "stack.pt", "stack")


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    def full(obj, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(LayerwiseError, match=r"cannot write .*stack.pt \(No space left on device\): free some disk"):
        save_artifact({}, tmp_path / "stack.pt", "stack")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes everywhere")
def test_an_unwritable_folder_is_found_before_training(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(LayerwiseError, match="choose a folder you may write to"):
            check_writable(tmp_path / "run")
    finally:
        tmp_path.chmod(0o700)


def test_check_writable_creates_the_folder_leaves_nothing_and_refuses_in_one_line(tmp_path):
    assert check_writable(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert list((tmp_path / "a" / "b").iterdir()) == []
    (tmp_path / "file").write_text("x")
    for bad in (tmp_path / "file", tmp_path / "file" / "run", tmp_path / ("y" * 300)):
        with pytest.raises(LayerwiseError) as error:
            check_writable(bad)
        assert "\n" not in str(error.value) and "choose" in str(error.value)
