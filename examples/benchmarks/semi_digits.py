"""What the unlabeled pool adds while fine-tuning, on the 8x8 digits: every ``--semi`` method, with and
without ``--augment shift``, on a dense and a convolutional stack and on their random controls.

``two-stage`` at 5 labels per class, seeds 0-4 (the same label samples for every row); the dense
stack is the one ``tests/test_semi.py`` measures with (``rbm:256``, ``rbm:128``, 20 epochs), the
convolutional one ``cae:16,kernel=3`` + ``ae:64`` (10 epochs). One line per row: the test
accuracies by seed and their mean::

    OMP_NUM_THREADS=1 python examples/benchmarks/semi_digits.py   # about 25 min on one core
"""
import argparse
import time

import numpy as np
import torch

import finetune
import pretrain

STACKS = {"dbn": ["rbm:256", "rbm:128"], "cae": ["cae:16,kernel=3", "ae:64"]}
EPOCHS = {"dbn": 20, "cae": 10}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/semi-digits")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, layers in STACKS.items():
        stack = f"{args.out}/{name}"
        pretrain.pretrain_stack("digits", layers, out=stack, epochs=EPOCHS[name], resume=True, progress=False)
        for source in (stack, f"random:{stack}"):
            for augment in ("none", "shift"):
                for semi in ("none", "pseudo-label", "consistency"):
                    started = time.perf_counter()
                    rows = finetune.compare("digits", [source], ["two-stage"], "5", args.seeds, semi=semi,
                                            augment=augment, progress=False)
                    accuracy = np.array([row["test_accuracy"] for row in rows])
                    print(f"{source:28s} augment {augment:5s} semi {semi:12s} {np.round(accuracy, 3).tolist()} "
                          f"mean {accuracy.mean():.3f} ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
