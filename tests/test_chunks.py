"""Inference in chunks sized by bytes: a chunk's widest tensor stays within CHUNK_BYTES, and the codes do not
depend on the chunks."""
import numpy as np
import pytest
import torch

import pretrain
from finetune.networks.body import UNSIZED_CHUNK_ROWS, body_from_stack, pixels_body, torchvision_body
from pretrain.core.batches import CHUNK_BYTES, CHUNK_ROWS, rows_within
from pretrain.layers import LayerSpec


@pytest.mark.parametrize("spec, shape", [("cae:32", (1, 28, 28)), ("crbm:16,kernel=3,pool=4", (3, 32, 32)),
                                         ("cae:8,kernel=3,stride=2,pool=1", (1, 28, 28)), ("rbm:500", (784,)),
                                         ("ae:64", (64,))])
def test_a_chunk_of_a_layers_widest_maps_stays_within_the_budget(spec, shape):
    layer = LayerSpec.parse(spec).build(shape, "unit")
    widest = max(np.prod(shape), np.prod(getattr(layer, "map_shape", (0,)))) * 4  # the input or the hidden maps
    assert layer.row_bytes == widest
    rows = rows_within(layer.row_bytes)
    assert 1 <= rows <= CHUNK_ROWS and (rows * widest <= CHUNK_BYTES or rows == 1)
    assert rows == CHUNK_ROWS or (rows + 1) * widest > CHUNK_BYTES  # no smaller than it must be


def test_rows_within_gives_at_least_one_row():
    assert rows_within(10 * CHUNK_BYTES) == 1 and rows_within(0) == CHUNK_ROWS


def test_a_conv_stacks_codes_do_not_depend_on_the_chunks(digits, tmp_path):
    stack = pretrain.pretrain_stack(digits.x_train[:300].reshape(-1, 8, 8), ["cae:6,kernel=3", "rbm:16"],
                                    epochs=1, progress=False, device="cpu")
    raw = digits.x_test[:50].reshape(-1, 8, 8)
    torch.testing.assert_close(stack.transform(raw), stack.transform(raw, batch_size=7), rtol=0, atol=1e-6)
    body = body_from_stack(stack, "stack")
    assert body.row_bytes == max(layer.row_bytes for layer in stack.layers)
    assert body.chunk_rows == rows_within(body.row_bytes)
    assert pixels_body(stack.preprocessing).chunk_rows == CHUNK_ROWS  # 64 floats a row: the most rows


def test_a_backbone_whose_widest_maps_are_unknown_keeps_the_fixed_chunk():
    assert torchvision_body("resnet18@none", (32, 32, 3), input_size=32).chunk_rows == UNSIZED_CHUNK_ROWS
