"""``npy:FILE``: a memory-mapped array pretrains to the same stack as the array in memory."""
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import pretrain
from pretrain.data.specs import load_data
from pretrain.core.errors import LayerwiseError


@pytest.fixture(scope="module")
def digits_npy(tmp_path_factory):
    path = tmp_path_factory.mktemp("npy") / "digits.npy"
    np.save(path, load_digits().images.astype(np.uint8))
    return path


def test_npy_is_memory_mapped_and_unlabeled(digits_npy):
    data = load_data(f"npy:{digits_npy}")
    assert isinstance(data.x_train, np.memmap) and data.x_train.shape == (1797, 8, 8)
    assert data.y_train is None and data.x_test is None


def test_npy_gives_the_stack_of_the_same_array_in_memory(digits_npy, tmp_path):
    """Inputs are preprocessed a chunk at a time into a memory map in the output folder, which is removed."""
    options = dict(epochs=2, batch_size=50, seed=2, progress=False)
    mapped = pretrain.pretrain_stack(f"npy:{digits_npy}", ["rbm:16", "ae:8"], tmp_path / "out", **options)
    in_memory = pretrain.pretrain_stack(np.load(digits_npy), ["rbm:16", "ae:8"], **options)
    for a, b in zip(mapped.layers, in_memory.layers):
        for key, value in b.state_dict().items():
            assert torch.equal(a.state_dict()[key], value), key
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["stack.json", "stack.pt"]


def test_npy_without_the_file_or_with_an_npz_says_what_to_do(tmp_path):
    with pytest.raises(LayerwiseError, match="not found: check the path after 'npy:'"):
        load_data(f"npy:{tmp_path / 'missing.npy'}")
    np.savez(tmp_path / "a.npz", x=np.zeros((3, 2)))
    with pytest.raises(LayerwiseError, match="numpy.save"):
        load_data(f"npy:{tmp_path / 'a.npz'}")
