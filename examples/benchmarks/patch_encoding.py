"""A patch layer's encoding against the matrix product it is made of, in one run.

    OMP_NUM_THREADS=1 python examples/benchmarks/patch_encoding.py [--features 1600] [--images 300]

Encodes CIFAR-sized images (3 x 32 x 32, 6 x 6 patches at stride 1: 729 positions) with
``patch-kmeans:F`` (normalisation, whitening, the triangle code, sum-pooling over the
quadrants), in the chunks the stack uses, and times ``torch.mm`` of the dictionary's product
for the same chunks ([chunk x 729, 108] x [108, F]) in turn; prints ms per image for each
and their ratio (the share of the machine's matmul rate the encoding runs at).
"""
import argparse
import time

import torch

from pretrain.core.batches import rows_within
from pretrain.layers import LayerSpec


def median_seconds(function, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=1600)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    images = torch.rand(args.images, 3, 32, 32)
    layer = LayerSpec.parse(f"patch-kmeans:{args.features},patches=20000").build((3, 32, 32), "unit")
    layer.init_from_data(layer.training_rows(images, fit=True))
    encoder = layer.to_modules().eval()
    chunk = rows_within(layer.row_bytes)
    a, b = torch.randn(chunk * 729, 108), torch.randn(108, args.features)
    chunks = range(0, args.images, chunk)
    with torch.no_grad():
        encode = median_seconds(lambda: [encoder(images[i:i + chunk]) for i in chunks], args.rounds)
        product = median_seconds(lambda: [torch.mm(a, b) for _ in chunks], args.rounds)
    print(f"threads {torch.get_num_threads()}, {chunk} images a chunk: encoding {encode / args.images * 1e3:.2f} "
          f"ms/image, torch.mm {product / args.images * 1e3:.2f} ms/image, ratio {product / encode:.2f}")


if __name__ == "__main__":
    main()
