"""How fast ImageNet backbones turn images into features on a CPU, and what caching them saves.

1. Feature extraction, images/s: resnet18 and mobilenet_v3_small (random weights:
   the speed is the same as with ImageNet's) at 64 and 224 pixels, batches of 64,
   after one warm-up batch.
2. Training a linear head on a frozen resnet18 at 64 pixels over 10,000 images:
   one epoch that recomputes the features of every batch, against epochs on
   features computed once and cached (what ``--schedule linear`` and the first
   stage of ``two-stage`` do). The cache itself costs one feature pass.

Images are Fashion-MNIST's test set (28x28 grayscale, repeated to RGB), or
random images of that shape when it is not on this machine.

    python examples/benchmarks/imagenet_features.py             # a few minutes on 2 cores
    python examples/benchmarks/imagenet_features.py --quick     # seconds
"""
import argparse
import os
import time

import numpy as np
import torch
from torch import nn

from finetune.networks.body import torchvision_body

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def load_images(n):
    """``n`` Fashion-MNIST test images and labels, or random ones when the files are absent."""
    if os.path.isdir(FASHION_MNIST):
        from pretrain.data.specs import load_data
        data = load_data(f"idx:{FASHION_MNIST}")
        return data.x_test[:n], data.y_test[:n], "Fashion-MNIST test images"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n), "random 28x28 images"


@torch.no_grad()
def features(body, x, batch_size):
    return torch.cat([body(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def images_per_second(spec, size, images, batch_size):
    body = torchvision_body(spec, (28, 28, 1), input_size=size).eval()
    x = body.preprocess(images)
    features(body, x[:batch_size], batch_size)  # warm-up: allocations, kernel choice
    start = time.perf_counter()
    features(body, x, batch_size)
    return len(x) / (time.perf_counter() - start)


def head_epoch(head, optimizer, inputs, labels, batch_size, body=None):
    """One epoch of a linear head; with ``body`` the (frozen) features of each batch are recomputed."""
    start = time.perf_counter()
    for i in range(0, len(inputs), batch_size):
        batch = inputs[i:i + batch_size]
        if body is not None:
            with torch.no_grad():
                batch = body(batch)
        loss = nn.functional.cross_entropy(head(batch), labels[i:i + batch_size])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def cached_versus_recomputed(images, labels, size, batch_size, cached_epochs):
    body = torchvision_body("resnet18@none", (28, 28, 1), input_size=size).eval()
    x, y = body.preprocess(images), torch.from_numpy(labels).long()
    head = nn.Linear(body.out_features, 10)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    recomputed = head_epoch(head, optimizer, x, y, batch_size, body)
    start = time.perf_counter()
    cache = features(body, x, batch_size)
    caching = time.perf_counter() - start
    cached = min(head_epoch(head, optimizer, cache, y, batch_size) for _ in range(cached_epochs))
    return recomputed, caching, cached


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024, help="images timed per backbone at 64 px")
    parser.add_argument("--images-224", type=int, default=256, help="images timed per backbone at 224 px")
    parser.add_argument("--train", type=int, default=10_000, help="images in the head-training comparison")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="tiny settings, to check the script runs")
    args = parser.parse_args()
    if args.quick:
        args.images, args.images_224, args.train = 128, 32, 512
    images, labels, source = load_images(max(args.train, args.images))
    print(f"{source}; torch {torch.__version__}, {torch.get_num_threads()} threads\n")

    print(f"{'backbone':20s} {'pixels':>6s} {'images':>6s} {'images/s':>9s}")
    for spec in ("resnet18@none", "mobilenet_v3_small@none"):
        for size, n in ((64, args.images), (224, args.images_224)):
            rate = images_per_second(spec, size, images[:n], args.batch_size)
            print(f"{spec.split('@')[0]:20s} {size:6d} {n:6d} {rate:9.1f}")

    recomputed, caching, cached = cached_versus_recomputed(images[:args.train], labels[:args.train], 64,
                                                           args.batch_size, cached_epochs=5)
    print(f"\nlinear head on frozen resnet18 features, 64 px, {args.train} images, batches of {args.batch_size}:")
    print(f"  epoch recomputing features {recomputed:8.2f} s")
    print(f"  building the feature cache {caching:8.2f} s (once)")
    print(f"  epoch on cached features   {cached:8.3f} s (best of 5)")
    print(f"  speedup per epoch          {recomputed / cached:8.0f}x")


if __name__ == "__main__":
    main()
