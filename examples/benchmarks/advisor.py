"""Is the measured advisor's pick as good as the best of the full grid, at a fraction of its cost?

For each task (data, sources, labels per class) this runs ``finetune.advise``
(every source, its control and ``pixels``, at every cut: a cross-validated
linear probe and LogME on frozen features of the labeled sample) and then the
full grid of what the advisor chooses from: every source x cut (``drop_top``)
x schedule (``linear``, ``two-stage``, ``full``; ``pixels`` has only ``linear``)
fine-tuned by ``finetune.compare`` on the same label sample (seed 0) and scored
on the test split. Both run in this process one after the other, so their
wall-clock times are comparable. Success (issue 13, section 2): the pick
within 1.5 points of the grid's best test accuracy in >= 80% of the tasks, at
<= 1/5 of the grid's wall-clock time.

It also asks which score predicts the fine-tuned accuracy better: per task,
Kendall's tau between each score and each candidate's best test accuracy over
the schedules, and the regret of each score's top candidate (the grid's best
minus that candidate's best).

Tasks: digits with a 64-128-64 RBM stack pretrained on the digits' training
images; the same stack used on the digits transposed (a stack from related but
different data); a stack of the same shape pretrained on uniform noise;
Fashion-MNIST with the 784-1000-500-250 stack (``--fashion-stack``), its test
split subsampled to ``--test-rows`` (stratified) to keep the grid feasible.
One label sample (seed 0) per task::

    python examples/benchmarks/advisor.py --threads 1
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

import finetune
from pretrain import pretrain_stack
from pretrain.data.specs import load_data
from pretrain.data.dataset import Dataset

OUT = Path(__file__).parent / "results" / "advisor"
FASHION = "idx:/usr/share/datasets/fashion-mnist"
SCHEDULES = ("linear", "two-stage", "full")
DIGITS_LAYERS = ["rbm:128,momentum=0.9", "rbm:64,momentum=0.9"]


def digits_stacks(work: Path, digits: Dataset):
    """A stack pretrained on the digits' training images, and one of the same shape pretrained on uniform noise."""
    real, noise = work / "digits-dbn", work / "noise-dbn"
    if not (real / "stack.pt").is_file():
        pretrain_stack(digits, DIGITS_LAYERS, out=real, epochs=30, progress=False)
    if not (noise / "stack.pt").is_file():
        uniform = np.random.default_rng(0).uniform(0, 16, size=digits.x_train.shape)
        pretrain_stack(Dataset("uniform-noise", uniform, None, None, None), DIGITS_LAYERS, out=noise, epochs=30,
                       progress=False)
    return str(real), str(noise)


def transposed(data: Dataset) -> Dataset:
    """The same images and labels, each transposed: related data the stack never saw."""
    return Dataset(data.spec + "-transposed", data.x_train.transpose(0, 2, 1), data.y_train,
                   data.x_test.transpose(0, 2, 1), data.y_test, classes=data.classes)


def test_subsample(data: Dataset, rows: int) -> Dataset:
    """``data`` with a stratified random ``rows`` of its test split (seed 0)."""
    from sklearn.model_selection import train_test_split
    keep, _ = train_test_split(np.arange(len(data.y_test)), train_size=rows, stratify=data.y_test, random_state=0)
    keep = np.sort(keep)
    return Dataset(data.spec, data.x_train, data.y_train, data.x_test[keep], data.y_test[keep], classes=data.classes,
                   split_seed=data.split_seed)


def run_grid(data: Dataset, advice, labels_per_class: int, epochs: int):
    """Every candidate source x cut x schedule fine-tuned on label sample 0; the rows (with ``drop_top``)."""
    groups = {c.source: c.groups for c in advice.candidates}
    rows = []
    for drop in range(max(groups.values())):
        sources = [s for s, g in groups.items() if g > drop]
        rows += [dict(row, drop_top=drop) for row in finetune.compare(
            data, sources, SCHEDULES, str(labels_per_class), [0], drop_top=drop, epochs=epochs, progress=False)]
    rows += [dict(row, drop_top=0) for row in finetune.compare(
        data, ["pixels"], ["linear"], str(labels_per_class), [0], epochs=epochs, progress=False)]
    return rows


def score_quality(advice, rows):
    """Per score: Kendall's tau with each candidate's best accuracy over schedules, and its top candidate's regret."""
    best_of = {}
    for row in rows:
        key = row["source"], row["drop_top"]
        best_of[key] = max(best_of.get(key, 0.0), row["test_accuracy"])
    grid_best = max(best_of.values())
    quality = {}
    for score in ("probe", "logme"):
        scored = [c for c in advice.candidates if getattr(c, score) is not None]
        if not scored:
            continue
        values = [getattr(c, score) for c in scored]
        accuracy = [best_of[c.source, c.drop_top] for c in scored]
        top = max(scored, key=lambda c: (getattr(c, score), c.logme))
        tau = kendalltau(values, accuracy).statistic
        quality[score] = {"kendall_tau": None if np.isnan(tau) else round(float(tau), 3),
                          "regret": round(grid_best - best_of[top.source, top.drop_top], 4)}
    return quality


def run_task(name: str, data: Dataset, sources, labels_per_class: int, epochs: int) -> dict:
    started = time.perf_counter()
    advice = finetune.advise(data, sources, labels_per_class, seed=0, progress=False)
    advisor_seconds = time.perf_counter() - started
    started = time.perf_counter()
    rows = run_grid(data, advice, labels_per_class, epochs)
    grid_seconds = time.perf_counter() - started
    r = advice.recommendation
    pick = next(row for row in rows if row["source"] == r["source"] and row["drop_top"] == r["drop_top"]
                and row["schedule"] == (r["schedule"] if r["source"] != "pixels" else "linear"))
    best = max(rows, key=lambda row: row["test_accuracy"])
    return {"task": name, "labels_per_class": labels_per_class, "advice": advice.to_dict(),
            "pick": f"{r['source']} drop {r['drop_top']} {r['schedule']}", "pick_accuracy": pick["test_accuracy"],
            "best": f"{best['source']} drop {best['drop_top']} {best['schedule']}",
            "best_accuracy": best["test_accuracy"], "gap": round(best["test_accuracy"] - pick["test_accuracy"], 4),
            "advisor_seconds": round(advisor_seconds, 1), "grid_seconds": round(grid_seconds, 1),
            "scores": score_quality(advice, rows), "grid": rows}


def markdown(results) -> str:
    lines = ["| task | labels/class | scenario | pick | pick acc | grid best | best acc | gap | advisor s | grid s "
             "| time ratio | probe tau / regret | LogME tau / regret |", "|" + "---|" * 13]
    for t in results:
        s = t["scores"]
        cell = {k: f"{s[k]['kendall_tau']} / {s[k]['regret']:.3f}" if k in s else "-" for k in ("probe", "logme")}
        lines.append(f"| {t['task']} | {t['labels_per_class']} | {t['advice']['recommendation']['scenario']} | "
                     f"{t['pick']} | {t['pick_accuracy']:.3f} | {t['best']} | {t['best_accuracy']:.3f} | "
                     f"{t['gap']:+.3f} | {t['advisor_seconds']} | {t['grid_seconds']} | "
                     f"{t['advisor_seconds'] / t['grid_seconds']:.3f} | {cell['probe']} | {cell['logme']} |")
    hits = sum(t["gap"] <= 0.015 for t in results)
    ratio = sum(t["advisor_seconds"] for t in results) / sum(t["grid_seconds"] for t in results)
    lines += ["", f"pick within 1.5 points of the grid's best: {hits}/{len(results)} tasks; advisor time / grid time "
              f"over all tasks: {ratio:.3f}"]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="digits,fashion", help="digits and/or fashion")
    parser.add_argument("--budgets", default="1,10,100")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--fashion-stack", default="/work/runs/fashion-mnist-dbn")
    parser.add_argument("--test-rows", type=int, default=2000, help="Fashion-MNIST test rows kept (stratified)")
    parser.add_argument("--work", default="/tmp/advisor-benchmark", help="where the digits stacks are pretrained")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budgets = [int(b) for b in args.budgets.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    existing = out / "results.json"
    results = json.loads(existing.read_text())["tasks"] if existing.is_file() else []
    tasks = []
    if "digits" in args.tasks:
        digits = load_data("digits")
        real, noise = digits_stacks(Path(args.work), digits)
        tasks += [("digits, digits stack + noise stack", digits, [real, noise], k) for k in budgets]
        tasks += [("digits transposed, digits stack", transposed(digits), [real], k) for k in (10, 100)]
        tasks += [("digits, noise stack only", digits, [noise], 10)]
    if "fashion" in args.tasks:
        fashion = test_subsample(load_data(FASHION), args.test_rows)
        tasks += [(f"Fashion-MNIST (test {args.test_rows}), 784-1000-500-250 stack", fashion, [args.fashion_stack], k)
                  for k in budgets]
    for name, data, sources, k in tasks:
        results = [t for t in results if (t["task"], t["labels_per_class"]) != (name, k)]
        results.append(run_task(name, data, sources, k, args.epochs))
        print(markdown(results[-1:]).splitlines()[2], flush=True)
        (out / "results.json").write_text(json.dumps({"command": "python examples/benchmarks/advisor.py "
                                                      + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in
                                                                 vars(args).items() if k != "out"),
                                                      "tasks": results}, indent=1, default=str))
        (out / "results.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
