"""A patch layer's encoding against the matrix product it is made of, in one run.

    OMP_NUM_THREADS=1 python examples/benchmarks/patch_encoding.py [--features 1600] [--images 300]

Encodes CIFAR-sized images (3 x 32 x 32, 6 x 6 patches at stride 1: 729 positions) with
``patch-kmeans:F`` (normalisation, whitening, the triangle code, sum-pooling over the
quadrants), in the chunks the stack uses, and times ``torch.mm`` of the dictionary's product
for the same chunks ([chunk x 729, 108] x [108, F]), alternating round by round, so that a host
whose speed drifts moves both sides alike; prints the median ms per image of each and the median
and range of the rounds' ratios (the share of the machine's matmul rate the encoding runs at).
"""
import argparse
import statistics
import time

import torch

from pretrain.core.batches import rows_within
from pretrain.core.memory import keep_freed_memory
from pretrain.layers import LayerSpec


def seconds(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=1600)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    keep_freed_memory()  # as the commands set their process (pretrain.core.memory): encoder and product alike
    torch.manual_seed(0)
    images = torch.rand(args.images, 3, 32, 32)
    layer = LayerSpec.parse(f"patch-kmeans:{args.features},patches=20000").build((3, 32, 32), "unit")
    layer.init_from_data(layer.training_rows(images, fit=True))
    encoder = layer.to_modules().eval()
    chunk = rows_within(layer.row_bytes)
    a, b = torch.randn(chunk * 729, 108), torch.randn(108, args.features)
    chunks = range(0, args.images, chunk)
    encode, product = [], []
    with torch.no_grad():
        encoder(images[:chunk]), torch.mm(a, b)  # the first call of each pays its one-time set-up: not timed
        for _ in range(args.rounds):
            encode.append(seconds(lambda: [encoder(images[i:i + chunk]) for i in chunks]))
            product.append(seconds(lambda: [torch.mm(a, b) for _ in chunks]))
    ratios = [m / e for m, e in zip(product, encode)]
    ms = {name: statistics.median(times) / args.images * 1e3 for name, times in (("encode", encode), ("mm", product))}
    print(f"threads {torch.get_num_threads()}, {chunk} images a chunk, {args.rounds} rounds: encoding "
          f"{ms['encode']:.2f} ms/image, torch.mm {ms['mm']:.2f} ms/image, ratio {statistics.median(ratios):.2f} "
          f"(rounds {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
