"""Which L2 strength does the probe's cross-validation pick at 5 labels per class? The source of ``FIXED_C``.

Below 2 labels per class there is nothing to cross-validate, so the probe
(:mod:`finetune.training.probe`) uses a fixed ``C``. This prints the ``C`` its
cross-validation picks at 5 labels per class, for ``--seeds`` label samples,
on pixels and on a pretrained stack's top features, for each data set given.
The figures in :mod:`finetune.training.probe` came from::

    pretrain digits -l rbm:128,momentum=0.9 -l rbm:64,momentum=0.9 --epochs 30 -o runs/digits-dbn
    python examples/benchmarks/label_budget.py --budgets 1   # pretrains runs/fashion-mnist-dbn
    python examples/benchmarks/probe_strength.py --seeds 10 digits=runs/digits-dbn \\
        idx:/usr/share/datasets/fashion-mnist=runs/fashion-mnist-dbn
"""
import argparse

import numpy as np
import torch

from finetune.study.budget import Budget, sample_labels
from finetune.networks.classifier import build_head
from finetune.training.probe import fit_linear_head
from finetune.networks.sources import make_body
from pretrain.data.specs import load_data


def picked_strengths(data: str, stack: str, per_class: int, seeds: int) -> dict:
    """``{"pixels": [C per seed], "stack": [C per seed]}`` for ``data`` and the stack folder ``stack``."""
    dataset = load_data(data)
    body = make_body(stack, dataset).eval()
    picked = {"pixels": [], "stack": []}
    for seed in range(seeds):
        rows = sample_labels(dataset.y_train, Budget(per_class=per_class), seed)
        pixels = body.preprocess(dataset.x_train[rows])
        labels = torch.from_numpy(dataset.y_train[rows].astype(np.int64))
        with torch.no_grad():
            features = {"pixels": pixels, "stack": body(pixels)}
        for name, x in features.items():
            head = build_head({"kind": "linear"}, x.shape[1], dataset.n_classes)
            picked[name].append(fit_linear_head(head, x, labels, dataset.n_classes).C)
    return picked


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", help="DATA=STACK_DIR")
    parser.add_argument("--labels-per-class", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    everything = []
    for pair in args.pairs:
        data, _, stack = pair.partition("=")
        for name, strengths in picked_strengths(data, stack, args.labels_per_class, args.seeds).items():
            print(f"{data} {name}: C = {', '.join(f'{c:g}' for c in strengths)}", flush=True)
            everything += strengths
    print(f"all: median {np.median(everything):g}, geometric mean {np.exp(np.mean(np.log(everything))):.3g}")


if __name__ == "__main__":
    main()
