"""The trainer's epoch against the plain loop's, in one process, taken in turn: what is left between them.

``rbm_throughput.py`` times each kind in its own rounds and keeps the best; here the
plain hand-written loop (``plain_epoch`` of ``rbm_throughput.py``), ``run_epoch`` as
``pretrain`` runs it (with its loss) and ``run_epoch(..., with_loss=False)`` alternate
epoch by epoch (ABC, CBA, ...) over the first 30,000 Fashion-MNIST images (784 -> 500,
batch 100, lr 0.1, momentum 0), so a change in the machine's speed hits all three
alike; the table gives each one's median epoch and the loop's over each::

    python examples/benchmarks/trainer_vs_loop.py                      # CD-1, PCD, CD-3; 6 epochs each
    python examples/benchmarks/trainer_vs_loop.py --algorithms PCD --rounds 10
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from rbm_throughput import ALGORITHMS, BATCH, FASHION_MNIST, HIDDEN, LAYERWISE, LR, plain_epoch  # noqa: E402

from pretrain.core.memory import keep_freed_memory  # noqa: E402
from pretrain.data.specs import load_data  # noqa: E402
from pretrain.layers import LayerSpec  # noqa: E402
from pretrain.training.epoch import layer_optimizer, run_epoch  # noqa: E402


def medians(x: torch.Tensor, algorithm: str, rounds: int) -> dict:
    """Median seconds per epoch of the loop, the trainer and the trainer without its loss."""
    torch.manual_seed(0)
    rbm = {"weight": torch.randn(HIDDEN, x.shape[1]) * 0.01, "visible_bias": torch.zeros(x.shape[1]),
           "hidden_bias": torch.zeros(HIDDEN), "chain": torch.zeros(BATCH, HIDDEN)}
    layer = LayerSpec.parse(LAYERWISE[algorithm]).build(x.shape[1], "unit")
    optimizer = layer_optimizer(layer, LR)
    return medians_in_turn({"plain loop": lambda: plain_epoch(rbm, x, algorithm),
                            "trainer": lambda: run_epoch(layer, optimizer, x, BATCH),
                            "trainer, no loss": lambda: run_epoch(layer, optimizer, x, BATCH, with_loss=False)},
                           rounds)


def medians_in_turn(runs: dict, rounds: int) -> dict:
    """Median seconds of each of ``runs`` (name -> function), called in turn ``rounds`` times (ABC, CBA, ...)."""
    times = {name: [] for name in runs}
    for round_ in range(rounds):
        for name in (list(runs) if round_ % 2 == 0 else list(runs)[::-1]):
            started = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=list(ALGORITHMS))
    parser.add_argument("--rounds", type=int, default=6, help="epochs of each, taken in turn")
    parser.add_argument("--rows", type=int, default=30000)
    args = parser.parse_args()
    keep_freed_memory()  # as the commands set their process (pretrain.core.memory): loops and trainer alike
    x = torch.from_numpy(load_data(FASHION_MNIST).x_train.reshape(-1, 784)[:args.rows].astype("float32") / 255.0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(x):,} images, median of "
          f"{args.rounds} epochs each, taken in turn")
    print("| algorithm | plain loop s | trainer s | trainer, no loss s | loop / trainer | loop / no loss |")
    print("|---|---|---|---|---|---|")
    for algorithm in args.algorithms:
        m = medians(x, algorithm, args.rounds)
        loop, trainer, bare = m["plain loop"], m["trainer"], m["trainer, no loss"]
        print(f"| {algorithm} | {loop:.3f} | {trainer:.3f} | {bare:.3f} | {loop / trainer:.2f}x | {loop / bare:.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
