"""Which training rule gives the better RBM? Test log-likelihood in nats of CD-1, CD-10 and PCD.

Binarised Fashion-MNIST (pixel / 255 > 0.5 -> 1, the rule ``pretrain --score``
applies: ``pretrain.likelihood.partition.BINARISATION``), an RBM 784 -> 500 trained on the
60,000 binarised training images (5% held out) for the same number of epochs
with each rule (rate 0.1, momentum 0.5, batch 100; PCD also at rate 0.01), then
scored on the 10,000 binarised test images: ``log Z`` by AIS (100 runs, the
14,501-beta schedule, base rates from the training images),
the mean test ``log p(v)`` with Salakhutdinov & Murray's bounds, and the time
of that AIS. ``log Z`` is the larger of two AIS estimates, annealed from the
training images' base rates and from the uniform distribution
(``pretrain.likelihood.scoring.cautious_log_partition``); both are shown. Stacks already
in ``--out`` are scored again without retraining. Every epoch a quick AIS (100 runs x 1,000 betas) also records the
held-out log-likelihood, drawn in ``loglik_curves.png`` (biased high: few betas
underestimate ``log Z``). For orientation only (MNIST, not Fashion-MNIST):
Salakhutdinov & Murray (2008) report -86.34 nats for 500 hidden units and CD-25.

    python examples/benchmarks/likelihood.py --epochs 5 --out examples/benchmarks/results/likelihood
    python examples/benchmarks/likelihood.py --quick   # 6,000 images, 1 epoch, 1,000 betas: a smoke test

On a machine shared with other processes, time at 1 thread (``--ais-threads 1``):
OpenMP threads that wait on each other for a busy core can take many times longer.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from pretrain import load_stack, pretrain_stack
from pretrain.data.specs import Dataset, load_data
from pretrain.core.io import save_json, save_text
from pretrain.likelihood.partition import BINARISATION, ais_log_partition, beta_schedule
from pretrain.likelihood.scoring import score_layer

FASHION_MNIST = "idx:/usr/share/datasets/fashion-mnist"
RULES = {"CD-1": "rbm:500", "CD-10": "rbm:500,k=10", "PCD": "rbm:500,pcd=true",
         "PCD, lr 0.01": "rbm:500,pcd=true,lr=0.01"}
TARGET_SECONDS = 30.0


def binarised(dataset: Dataset, n_train) -> Dataset:
    """The images as 0/255 bytes, ``x / 255 > 0.5`` (the stack's unit scaling then leaves them binary)."""
    def rule(x):
        return np.where(x.astype(np.float32) / 255 > 0.5, 255, 0).astype(np.uint8)
    return Dataset(dataset.spec, rule(dataset.x_train[:n_train]), None, rule(dataset.x_test), None)


def train_and_score(dataset: Dataset, spec: str, epochs: int, betas, out: Path):
    """One RBM trained with ``spec`` (or found in ``out``): its row (monitor, test score) and the layer."""
    folder = out / f"{spec.replace(',', '_').replace(':', '-')}-{epochs}"
    if (folder / "stack.pt").is_file():
        stack = load_stack(folder)
    else:
        stack = pretrain_stack(dataset, [spec], folder, epochs=epochs, device="cpu", progress=False, ais_every=1)
    train, test = stack.preprocess(dataset.x_train), stack.preprocess(dataset.x_test)
    score = score_layer(stack.layers[0], test, train, runs=100, betas=betas)
    history = stack.info["history"]
    return {"spec": spec, "epochs": epochs, "train_seconds": sum(r["seconds"] for r in history),
            "monitor": [(r["epoch"], r["log_likelihood_val"]) for r in history], **score}, stack.layers[0]


def time_one_ais(layer, threads: int, betas) -> float:
    """Seconds of one AIS (100 runs) at ``threads`` torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    started = time.perf_counter()
    ais_log_partition(layer, runs=100, betas=betas)
    torch.set_num_threads(before)
    return time.perf_counter() - started


def table(rows: list) -> str:
    lines = ["| rule | spec | epochs | test log p (nats) | bounds | log Z: base rates / uniform | AIS s (both) "
             "| training s |", "|---|---|---|---|---|---|---|---|"]
    for name, row in rows:
        high = "unbounded" if row["high"] is None else f"{row['high']:.2f}"
        by_base = " / ".join(f"{z:.2f}" for z, _, _ in row["log_z_by_base"].values())
        lines.append(f"| {name} | `{row['spec']}` | {row['epochs']} | {row['nats']:.2f} | [{row['low']:.2f}, {high}] "
                     f"| {by_base} | {row['ais_seconds']:.1f} | {row['train_seconds']:.0f} |")
    return "\n".join(lines)


def curves_figure(rows: list, path: Path) -> None:
    from matplotlib.figure import Figure
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    for name, row in rows:
        axes.plot(*zip(*row["monitor"]), "o-", label=name)
    axes.set_xlabel("epoch")
    axes.set_ylabel("held-out mean log p(v), nats")
    axes.set_title("Quick AIS monitor (100 runs x 1,000 betas; biased high)")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=FASHION_MNIST, help="data spec (default: Fashion-MNIST IDX files)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of every rule")
    parser.add_argument("--out", type=Path, default=Path("likelihood-benchmark"), help="stacks, table, figure")
    parser.add_argument("--ais-threads", default="1,2", help="torch thread counts at which one full AIS is timed")
    parser.add_argument("--quick", action="store_true", help="6,000 images, 1 epoch, 1,000 betas: a smoke test")
    args = parser.parse_args()
    n_train, epochs, betas = (6000, 1, 1000) if args.quick else (None, args.epochs, None)
    dataset = binarised(load_data(args.data), n_train)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"] * 3
    results = {name: train_and_score(dataset, spec, epochs, betas, args.out) for name, spec in RULES.items()}
    rows = [(name, row) for name, (row, _) in results.items()]
    timings = {int(t): time_one_ais(results["CD-1"][1], int(t), betas) for t in args.ais_threads.split(",")}
    report = (f"# Test log-likelihood of RBMs on binarised {args.data}\n\n{table(rows)}\n\n"
              f"Inputs: {BINARISATION}; {len(dataset.x_train)} training images (5% held out), "
              f"{len(dataset.x_test)} test images. torch {torch.__version__}, {torch.get_num_threads()} threads; "
              f"load average at start {' '.join(load)}.\n")
    report += "".join(f"\nOne AIS of the CD-1 RBM, 100 runs x {len(beta_schedule(betas)):,} betas, "
                      f"{threads} thread(s): {seconds:.1f} s (target <= {TARGET_SECONDS:.0f} s on 2 cores).\n"
                      for threads, seconds in timings.items())
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    save_text(report, args.out / "results.md")
    save_json({"rows": [{"rule": name, **row} for name, row in rows], "ais_seconds_by_threads": timings,
               "load_average": load}, args.out / "results.json")
    curves_figure(rows, args.out / "loglik_curves.png")


if __name__ == "__main__":
    main()
