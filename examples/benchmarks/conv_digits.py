"""Does a pretrained conv stack beat its random control on the 8x8 digits, with or without reconstruction?

Each stack is pretrained on the digits' unlabeled training images (20 epochs, seed 0), then
fine-tuned at 5 labels per class, seeds 0-4 (the same label samples for every row), under
``full`` and ``two-stage``, without an unlabeled term and with ``--semi reconstruction`` (each
layer keeps reconstructing its input through its decoder: the pretrained one, or a fresh one
for the control). One line per row: both means and the paired gaps by seed::

    OMP_NUM_THREADS=1 python examples/benchmarks/conv_digits.py   # about 8 min on one core
"""
import argparse
import time

import numpy as np
import torch

import finetune
import pretrain

STACKS = {"cae16": ["cae:16,kernel=3"], "cae16-ae64": ["cae:16,kernel=3", "ae:64"],
          "cae32x2": ["cae:32,kernel=3", "cae:32,kernel=3"], "crbm16": ["crbm:16,kernel=3,momentum=0.9"],
          "cae16-sigmoid": ["cae:16,kernel=3,act=sigmoid"]}


def mean_accuracies(stack: str, schedule: str, semi: str, seeds: int):
    """Test accuracies by seed of the pretrained stack and of its control."""
    rows = finetune.compare("digits", [stack, f"random:{stack}"], [schedule], "5", seeds, semi=semi, progress=False)
    by_source = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row["test_accuracy"])
    return np.array(by_source[stack]), np.array(by_source[f"random:{stack}"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/conv-digits")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--stacks", default=",".join(STACKS), help="which of " + ", ".join(STACKS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.stacks.split(","):
        stack = f"{args.out}/{name}"
        pretrain.pretrain_stack("digits", STACKS[name], out=stack, epochs=20, resume=True, progress=False)
        for semi in ("none", "reconstruction"):
            for schedule in ("full", "two-stage"):
                started = time.perf_counter()
                pretrained, control = mean_accuracies(stack, schedule, semi, args.seeds)
                print(f"{name:14s} {schedule:9s} semi {semi:14s} pretrained {pretrained.mean():.3f} "
                      f"control {control.mean():.3f} gaps {np.round(pretrained - control, 3).tolist()} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
