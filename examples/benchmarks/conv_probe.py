"""Does CAE/CRBM training improve one convolutional layer's features over its random init?

One first layer (32 filters on Fashion-MNIST's 1 x 28 x 28 images, max-pooled), trained for
``epochs`` on the first 20,000 training images or left at its Glorot init (epochs 0), then
probed: the converged linear head (:mod:`finetune.training.probe`) on its flattened maps at
10 labels per class, 3 label samples, test accuracy on the 10,000 test images::

    OMP_NUM_THREADS=1 python examples/benchmarks/conv_probe.py
    OMP_NUM_THREADS=1 python examples/benchmarks/conv_probe.py --zca 0.1 --variants 0,12,7
    OMP_NUM_THREADS=1 python examples/benchmarks/conv_probe.py --variants 17,18,19,20
    OMP_NUM_THREADS=1 python examples/benchmarks/conv_probe.py --zero-mean --variants 0,1,21,7,4

``--zca EPS`` whitens the images first (Coates, Lee & Ng 2011 found whitening
decisive for learned single-layer features): ZCA over the 784 pixels fitted on
the 20,000 training images, ``x -> (x - mean) V diag(1 / sqrt(e + EPS)) V^T``
for the eigenpairs ``(e, V)`` of their covariance, scaled to unit variance;
the layers then see real-valued input (squared-error CAEs).

``--zero-mean`` holds every filter at zero mean over its window (projected at the
start and after every optimizer step), so that no filter can pass the local
brightness on: the learned first-layer filters are otherwise dark blobs and
single bright pixels, codes that invert or copy the image.
"""
import argparse
import time

import numpy as np
import torch

from finetune.networks.classifier import build_head
from finetune.study.budget import Budget, sample_labels
from finetune.training.probe import fit_linear_head
from pretrain import load_data
from pretrain.core.batches import map_batches
from pretrain.layers import LayerSpec
from pretrain.training.epoch import layer_optimizer, run_epoch

VARIANTS = [("cae:32", 0), ("cae:32", 1), ("cae:32,noise=none", 1), ("cae:32,act=sigmoid", 1),
            ("cae:32,noise=mask:0.5", 1), ("crbm:32,sparsity=0.05,momentum=0.9", 1),
            ("cae:32,winners=0.2,noise=none", 1), ("cae:32,winners=1,noise=none", 1),
            ("cae:32,winners=1,noise=none", 4), ("cae:32,pool=4", 0), ("cae:32,pool=4", 1),
            ("cae:32,pool=4,winners=1,noise=none", 1), ("cae:32,noise=gauss:0.3", 1),
            ("crbm:32,sparsity=0.05,momentum=0.9,pooling=probabilistic", 1), ("crbm:32,momentum=0.9", 1),
            ("crbm:32,momentum=0.9,pooling=probabilistic", 1), ("cae:32,winners=0.2,noise=none", 4),
            ("cae:4", 0), ("cae:4", 2), ("cae:8", 0), ("cae:8", 2), ("cae:32", 3)]


def whitening(x: torch.Tensor, eps: float):
    """ZCA whitening fitted on ``x`` [N, 1, H, W] (see the module docstring), as a function of images."""
    flat = x.flatten(1).double()
    mean = flat.mean(0)
    eigenvalues, vectors = torch.linalg.eigh(torch.cov((flat - mean).T))
    zca = (vectors / (eigenvalues + eps).sqrt()) @ vectors.T
    scale = ((flat - mean) @ zca).std()
    return lambda images: (((images.flatten(1).double() - mean) @ zca) / scale).float().reshape(images.shape)


def hold_zero_mean(layer, optimizer) -> None:
    """Project ``layer``'s filters to zero mean over each window now and after every ``optimizer`` step."""
    def centre():
        with torch.no_grad():
            layer.weight -= layer.weight.mean((2, 3), keepdim=True)
    step = optimizer.step

    def step_then_centre(*args, **kwargs):
        result = step(*args, **kwargs)
        centre()
        return result
    optimizer.step = step_then_centre
    centre()


def images(raw: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(raw.astype(np.float32) / 255).reshape(-1, 1, 28, 28)


def probe(layer, data, x_train, x_test, per_class: int, seeds: int):
    modules = layer.to_modules().eval()
    features = map_batches(lambda x: modules(x).flatten(1), x_train, 2000)
    test_features = map_batches(lambda x: modules(x).flatten(1), x_test, 2000)
    accuracies = []
    for seed in range(seeds):
        rows = sample_labels(data.y_train, Budget(per_class=per_class), seed)
        head = build_head({"kind": "linear"}, features.shape[1], 10)
        fit_linear_head(head, features[rows], torch.from_numpy(data.y_train[rows]), 10)
        with torch.no_grad():
            accuracies.append(float((head(test_features).argmax(1).numpy() == data.y_test).mean()))
    return accuracies


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="idx:/usr/share/datasets/fashion-mnist")
    parser.add_argument("--labels-per-class", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variants", help="indices of VARIANTS to run, comma-separated, e.g. 0,6,7 (default: all)")
    parser.add_argument("--zca", type=float, metavar="EPS", help="whiten the images first (ZCA, regulariser EPS)")
    parser.add_argument("--zero-mean", action="store_true", help="hold every filter at zero mean (see above)")
    args = parser.parse_args()
    data = load_data(args.data)
    x_train, x_test = images(data.x_train), images(data.x_test)
    if args.zca is not None:
        whiten = whitening(x_train[:20000], args.zca)
        x_train, x_test = whiten(x_train), whiten(x_test)
    for spec, epochs in [VARIANTS[int(i)] for i in args.variants.split(",")] if args.variants else VARIANTS:
        torch.manual_seed(0)
        started = time.perf_counter()
        layer = LayerSpec.parse(spec).build((1, 28, 28), "unit" if args.zca is None else "real")
        optimizer = layer_optimizer(layer, type(layer).default_lr)
        if args.zero_mean:
            hold_zero_mean(layer, optimizer)
        if epochs:
            layer.init_from_data(x_train[:1000])
            for _ in range(epochs):
                run_epoch(layer, optimizer, x_train[:20000], 100)
        accuracies = probe(layer.eval(), data, x_train, x_test, args.labels_per_class, args.seeds)
        print(f"{spec:38s}{' zero-mean' if args.zero_mean else ''} epochs {epochs}  linear probe {np.mean(accuracies):.3f} {np.round(accuracies, 3)} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
