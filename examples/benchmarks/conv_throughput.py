"""Throughput of the convolutional layers beside the convolution they are built on.

For each layer of the Fashion-MNIST conv stack (``cae:32`` on 1 x 28 x 28, ``cae:64,kernel=3``
on its 32 x 14 x 14 maps) and the ``crbm`` of the same shapes: samples per second of one
training step as the trainer runs it (``accumulate_gradients`` + the optimizer's step, minibatches
of 100, the loss asked at every ``LOSS_EVERY``-th step), and of
``torch.nn.functional.conv2d`` forward + backward alone on the same shapes (one "same"
convolution of the input into the hidden maps, gradients for the filters and the input).
A denoising autoencoder step does that convolution and a transposed one of the same size
(decoder), each with its backward; a CD-1 step does three convolutions of that size and
two filter correlations: so a ratio near 0.5 (cae) or 0.4 (crbm) is the cost of the method,
not overhead. The last columns measure that: the step beside the bare convolutions it is made of
(:func:`own_convolutions_step`), in the same run. Best of ``--repeats`` timings of ``--steps`` steps each, after a warm-up::

    python examples/benchmarks/conv_throughput.py --threads 2
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_weight

from pretrain.core.memory import keep_freed_memory
from pretrain.layers import LayerSpec
from pretrain.training.epoch import LOSS_EVERY, layer_optimizer

CASES = [("cae:32", (1, 28, 28)), ("cae:64,kernel=3", (32, 14, 14)),
         ("crbm:32", (1, 28, 28)), ("crbm:64,kernel=3", (32, 14, 14))]


def best_seconds(step, steps: int, repeats: int) -> float:
    step()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - started) / steps)
    return best


def layer_step(spec: str, shape, batch: int):
    layer = LayerSpec.parse(spec).build(shape, "unit")
    optimizer = layer_optimizer(layer, type(layer).default_lr)
    x = torch.rand(batch, *shape)

    steps = iter(range(10 ** 9))

    def step():  # as the trainer steps (run_epoch): the loss asked at every LOSS_EVERY-th minibatch
        layer.zero_grad(set_to_none=True)
        layer.accumulate_gradients(x, with_loss=next(steps) % LOSS_EVERY == 0)
        optimizer.step()
    return layer, step


def conv_step(layer, batch: int):
    weight = layer.weight.detach().clone().requires_grad_()
    x = torch.rand(batch, *layer.input_shape, requires_grad=True)

    def step():
        weight.grad = x.grad = None
        F.conv2d(x, weight, padding=layer.padding).sum().backward()
    return step


def own_convolutions_step(layer, batch: int):
    """The bare convolutions a training step of ``layer`` is made of, nothing else: for an autoencoder the
    encoding convolution and the decoding transposed one, forward and backward (filter gradients only, as
    training needs); for CD-1 the convolution up, the transposed one down, the one up again and the two
    filter correlations (``conv2d_weight``)."""
    weight = layer.weight.detach().clone()
    x = torch.rand(batch, *layer.input_shape)
    padding = layer.padding
    if layer.kind == "crbm":
        def step():
            h0 = torch.sigmoid(F.conv2d(x, weight, padding=padding))
            v1 = torch.sigmoid(F.conv_transpose2d(h0, weight, padding=padding))
            h1 = torch.sigmoid(F.conv2d(v1, weight, padding=padding))
            conv2d_weight(x, weight.shape, h0, padding=padding) - conv2d_weight(v1, weight.shape, h1, padding=padding)
        return step
    encoder, decoder = weight.clone().requires_grad_(), weight.clone().requires_grad_()

    def step():
        encoder.grad = decoder.grad = None
        code = torch.sigmoid(F.conv2d(x, encoder, padding=padding))
        (F.conv_transpose2d(code, decoder, padding=padding) - x).pow(2).mean().backward()
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    keep_freed_memory()  # as the commands set their process (pretrain.core.memory): loops and trainer alike
    torch.set_num_threads(args.threads)
    print(f"| layer | input | step samples/s | conv2d fwd+bwd samples/s | fraction | the step's own convolutions "
          f"samples/s | fraction |  ({args.threads} threads)")
    print("|---|---|---|---|---|---|---|")
    for spec, shape in CASES:
        layer, step = layer_step(spec, shape, args.batch_size)
        ours = args.batch_size / best_seconds(step, args.steps, args.repeats)
        conv = args.batch_size / best_seconds(conv_step(layer, args.batch_size), args.steps, args.repeats)
        own = args.batch_size / best_seconds(own_convolutions_step(layer, args.batch_size), args.steps, args.repeats)
        print(f"| `{spec}` | {' x '.join(map(str, shape))} | {ours:,.0f} | {conv:,.0f} | {ours / conv:.2f} "
              f"| {own:,.0f} | {ours / own:.2f} |", flush=True)


if __name__ == "__main__":
    main()
