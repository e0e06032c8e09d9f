"""Unpooling, alone and composed with the decoder's transposed convolution into one (issue 28, item 5)."""
import pytest
import torch
import torch.nn.functional as F

from pretrain.layers.convolution import unpool as pooling_unpool, unpool_transposed


@pytest.mark.parametrize("pool, size", [(2, 7), (3, 7), (3, 8), (4, 6)])
def test_unpooling_copies_each_maximum_over_its_own_window(pool, size):
    maps = torch.randn(2, 3, size, size)
    copied = pooling_unpool(F.max_pool2d(maps, pool, ceil_mode=True), pool, (size, size))
    assert copied.shape == maps.shape and (copied >= maps).all()  # no unit exceeds the maximum of its window


@pytest.mark.parametrize("pool, size, kernel, stride", [(2, 8, 5, 1), (3, 9, 3, 1), (2, 7, 3, 1), (2, 8, 3, 2)])
def test_the_composed_decoder_is_unpooling_then_the_transposed_convolution(pool, size, kernel, stride):
    """One transposed convolution by the box-summed filters at stride ``pool`` (whole windows at stride 1) gives
    the maps and the filters' gradient of unpooling then transposing, in float64 to rounding; partial windows
    (size 7) and strides take the two steps."""
    torch.manual_seed(0)
    maps = -(-size // stride)
    code = torch.randn(3, 4, -(-maps // pool), -(-maps // pool), dtype=torch.float64)
    weight = torch.randn(4, 2, kernel, kernel, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64)
    padding = (size - ((maps - 1) * stride - 2 * (kernel // 2) + kernel),) * 2  # output_padding back to ``size``
    composed = unpool_transposed(code, weight, bias, pool, (maps, maps), stride, kernel // 2, padding)
    (grad_composed,) = torch.autograd.grad(composed.pow(2).sum(), weight)
    written = F.conv_transpose2d(pooling_unpool(code, pool, (maps, maps)), weight, bias, stride=stride,
                                 padding=kernel // 2, output_padding=padding)
    (grad_written,) = torch.autograd.grad(written.pow(2).sum(), weight)
    assert composed.shape == written.shape == (3, 2, size, size)
    torch.testing.assert_close(composed, written)
    torch.testing.assert_close(grad_composed, grad_written)
