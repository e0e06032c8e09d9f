"""Does pretraining help? A DBN pretrained without labels against its random-init control, by label budget.

Fashion-MNIST, a 784-1000-500-250 stack of RBMs pretrained greedily on the
60,000 training images (labels unused), fine-tuned ``two-stage`` (the head on
the frozen body, then the whole body at 0.1x the head's rate) next to the same
architecture with fresh Glorot weights (``random:``). Every budget and seed
gives both sources the same label sample, so each gap is a paired comparison.

The report is rewritten after every budget, and rows already in ``--out`` are
kept (a row of the same source, budget and seed is replaced), so a run can be
done in pieces, e.g. the cheap budgets with 3 seeds, then ``all`` with one::

    python examples/benchmarks/label_budget.py --budgets 1,10,100,1000 --seeds 3
    python examples/benchmarks/label_budget.py --budgets all --seeds 1 --epochs 15

``--stack DIR`` reuses DIR/stack.pt when it exists; otherwise the stack is
pretrained into DIR first. Targets (issue): pretrained beats its control by
>= 5 points at 10 labels per class, >= 2.5 at 100, >= 1 at 1000; reaches
>= 0.70 at 10 and >= 0.82 at 100; >= 0.90 with all labels.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import finetune
from finetune.report import format_table, summarize
from pretrain import pretrain_stack
from pretrain.data import load_data

FASHION_MNIST = "idx:/usr/share/datasets/fashion-mnist"
LAYERS = ["rbm:1000", "rbm:500", "rbm:250"]
PRETRAINED, CONTROL = "pretrained", "random init"
#: labels per class -> least gap in points (pretrained minus control) and least pretrained accuracy.
TARGET_GAPS = {10: 5.0, 100: 2.5, 1000: 1.0}
TARGET_ACCURACY = {10: 0.70, 100: 0.82, "all": 0.90}
ROW_KEY = ("source", "schedule", "labels_per_class", "seed")


def ensure_stack(dataset, folder: Path, epochs_per_layer: int) -> float:
    """Pretrain the stack into ``folder`` unless it is there; return its pretraining seconds (from its history)."""
    if not (folder / "stack.pt").is_file():
        started = time.perf_counter()
        pretrain_stack(dataset, LAYERS, out=folder, epochs=epochs_per_layer, progress=False)
        print(f"pretrained {'-'.join(['784'] + [s.split(':')[1] for s in LAYERS])} in "
              f"{time.perf_counter() - started:.0f} s wall")
    info = json.loads((folder / "stack.json").read_text())
    return sum(epoch["seconds"] for epoch in info["history"])


def load_rows(out: Path) -> list:
    """Rows of an earlier run in ``out`` (none if there is none)."""
    path = out / "results.json"
    return json.loads(path.read_text())["rows"] if path.is_file() else []


def merge(old: list, new: list) -> list:
    """``old`` with ``new`` appended; a new row replaces an old one of the same source, budget and seed."""
    fresh = {tuple(row[k] for k in ROW_KEY) for row in new}
    return [row for row in old if tuple(row[k] for k in ROW_KEY) not in fresh] + new


def target_lines(rows: list, schedule: str = "two-stage") -> list:
    """One line per target of the issue that the rows can answer: value, threshold, met or missed."""
    summary = summarize(rows, "test_accuracy")
    pretrained, control = summary.get((PRETRAINED, schedule), {}), summary.get((CONTROL, schedule), {})
    lines = []
    for budget, least in TARGET_GAPS.items():
        if budget in pretrained and budget in control:
            gap = 100 * (pretrained[budget][0] - control[budget][0])
            lines.append(f"gap at {budget}/class: {gap:+.1f} points (target >= {least}): "
                         f"{'met' if gap >= least else 'MISSED'}")
    for budget, least in TARGET_ACCURACY.items():
        if budget in pretrained:
            accuracy = pretrained[budget][0]
            lines.append(f"pretrained at {budget}{'/class' if budget != 'all' else ' labels'}: {accuracy:.3f} "
                         f"(target >= {least}): {'met' if accuracy >= least else 'MISSED'}")
    return lines


def write_results(rows: list, out: Path, n_classes: int, pretrain_seconds: float) -> None:
    """results.json/csv/md and learning_curves.png, with the commands, setup and targets appended to results.md."""
    finetune.write_report(rows, out, n_classes)
    seconds = {source: sum(row["train_seconds"] for row in rows if row["source"] == source)
               for source in (PRETRAINED, CONTROL)}
    commands = dict.fromkeys(row["command"] for row in rows)
    notes = ["## Setup", "", "Made by", "", *[f"    {command}" for command in commands], "",
             f"Stack 784-1000-500-250 (`{' '.join('-l ' + s for s in LAYERS)}`), pretrained on the 60,000 "
             f"training images (5% held out to monitor it) in {pretrain_seconds:.0f} s (sum of epoch times).",
             f"Fine-tuning time, all rows: pretrained {seconds[PRETRAINED]:.0f} s, "
             f"random init {seconds[CONTROL]:.0f} s.", "", "## Targets", ""]
    notes += [f"- {line}" for line in target_lines(rows)]
    with open(out / "results.md", "a") as results:
        results.write("\n" + "\n".join(notes) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=FASHION_MNIST)
    parser.add_argument("--stack", default="runs/fashion-mnist-dbn", help="stack folder, reused if it has stack.pt")
    parser.add_argument("--epochs-per-layer", type=int, default=10, help="pretraining epochs, when pretraining")
    parser.add_argument("--budgets", default="1,10,100,1000,all", help="labels per class, run in this order")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100, help="most fine-tuning epochs per stage")
    # One thread: on a shared 2-core machine two threads per process ran fine-tuning ~6x slower (247 s vs 40 s).
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default="examples/benchmarks/results/label_budget")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python examples/benchmarks/label_budget.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("data", "out", "threads"))

    dataset = load_data(args.data)
    stack, out = Path(args.stack), Path(args.out)
    pretrain_seconds = ensure_stack(dataset, stack, args.epochs_per_layer)
    names = {str(stack): PRETRAINED, f"random:{stack}": CONTROL}
    rows = load_rows(out)
    for budget in args.budgets.split(","):
        new = finetune.compare(dataset, list(names), ["two-stage"], budget, seeds=args.seeds, epochs=args.epochs)
        rows = merge(rows, [{**row, "source": names[row["source"]], "command": command} for row in new])
        write_results(rows, out, dataset.n_classes, pretrain_seconds)
        print(format_table(rows, dataset.n_classes), *target_lines(rows), sep="\n", flush=True)
    print("fine-tuning seconds per row, mean:", {
        f"{source} {b}": round(float(np.mean([r["train_seconds"] for r in rows
                                               if r["source"] == source and r["labels_per_class"] == b])), 1)
        for source in (PRETRAINED, CONTROL) for b in dict.fromkeys(r["labels_per_class"] for r in rows)})


if __name__ == "__main__":
    main()
