"""Coates, Lee & Ng's single-layer table on natural images: learned patch features against their random controls.

    d=$(mktemp -d) && tar xzf ../shared/data/cifar10-train.tar.gz -C "$d"
    python examples/cifar10_table.py folder:"$d"/cifar10/train -o runs/cifar10-table
    python examples/cifar10_table.py digits -o runs/table-quick --quick      # seconds: the smoke test

Each learner (``--learners``) pretrains one patch layer on the training split
without labels (``pretrain``'s stacks under ``DIR/stacks/NAME``, resumed if
there), and each source, learners, their ``random:`` controls (Glorot
dictionaries behind the same whitening, encoder and pooling) and ``pixels``,
encodes the training and test images ONCE; then at each label budget and seed
a linear head is fitted on the cached features (finetune's converged probe:
features standardised, multinomial logistic regression, its ``C`` chosen by
cross-validation, or for budgets over ``CV_MOST`` labels on one held-out tenth
of a ``CV_MOST``-label subsample). Writes ``DIR/results.json`` / ``.csv`` / ``.md`` in the format of
``finetune --report``, after every source, so an interrupted run keeps what it
measured. The label samples are finetune's (same budget and seed, same rows).
A control's dictionary is drawn once (seed 0) for all its label samples.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn

import pretrain
from finetune.networks.sources import load_source
from finetune.study.budget import Budget, parse_budgets, sample_labels
from finetune.study.report import format_table, write_report
from finetune.training.probe import C_GRID, fit_linear_head
from pretrain.core.batches import map_batches
from pretrain.core.errors import LayerwiseError
from pretrain.layers import LayerSpec
from pretrain.core.memory import keep_freed_memory

#: the learners of the table: source name -> layer spec, or specs bottom first (F features, P patches; a
#: second greedy layer learns on its first's maps pooled over a G x G grid, F / 4 features wide; an RBM's from
#: P / 4 patches, its CD steps being the slowest part)
#: the sparse Gaussian RBM's training options, shared by every RBM learner
RBM = "sparsity=0.05,sparsity_cost=0.3,momentum=0.9,lr=0.005"
LEARNERS = {
    "kmeans": "patch-kmeans:{F},patches={P},epochs=10",
    "rbm": "patch-grbm:{F},patches={P},epochs=10," + RBM,
    "ae": "patch-ae:{F},patches={P},epochs=10",
    "patches": "patch-sampled:{F},patches={P}",
    "kmeans-nowhiten": "patch-kmeans:{F},patches={P},epochs=10,whiten=false",
    "rbm-nowhiten": "patch-grbm:{F},patches={P},epochs=10," + RBM + ",whiten=false",
    "kmeans-first": "patch-kmeans:{Q},patches={P},epochs=10",
    "kmeans-2layer": ("patch-kmeans:{Q},patches={P},epochs=10,grid={G}",
                      "patch-kmeans:{F},patch=2,patches={P},epochs=10"),
    "rbm-first": "patch-grbm:{Q},patches={P},epochs=10," + RBM,
    "rbm-2layer": ("patch-grbm:{Q},patches={P},epochs=10," + RBM + ",grid={G}",
                   "patch-grbm:{F},patch=2,patches={P4},epochs=10," + RBM),
}
#: label budgets up to this many labels choose the head's C by 5-fold cross-validation, larger ones on a
#: subsample of this many (one split)
CV_MOST = 10000
#: C tried by cross-validation (scikit-learn's C: larger is weaker regularisation); one decade below finetune's
#: grid: at 400 features most sources chose its lowest C at 10 labels per class, pixels at every budget
GRID = (1e-4,) + C_GRID
#: C tried for large budgets
LARGE_GRID = (1e-4, 1e-3, 1e-2, 1e-1)


def features_of(source, dataset, threads_note: str) -> tuple:
    """The body's features of the training and test images, computed once (seed 0's body)."""
    body = source.body(0).eval()
    started = time.perf_counter()
    with torch.no_grad():  # into tensors made first: small results between freed maps fragment the heap (50k: OOM)
        train, test = (map_batches(body, body.preprocess(x), body.chunk_rows, out=torch.empty(len(x), body.out_features))
                       for x in (dataset.x_train, dataset.x_test))
    seconds = time.perf_counter() - started
    print(f"  features {tuple(train.shape)} + {tuple(test.shape)} in {seconds:.0f} s{threads_note}", flush=True)
    return train.float(), test.float(), seconds


def large_budget_C(x: torch.Tensor, y: torch.Tensor, n_classes: int, seed: int) -> float:
    """The C of ``LARGE_GRID`` whose head, fitted on nine tenths of a stratified ``CV_MOST``-label subsample,
    scores best on its last tenth (a full-size search would take most of an hour per source on 2 cores)."""
    subsample = sample_labels(y.numpy(), Budget(total=CV_MOST), seed)
    order = np.random.default_rng(seed).permutation(subsample)
    held, fit = order[:len(order) // 10], order[len(order) // 10:]
    scores = []
    for C in LARGE_GRID:
        head = linear_head(x.shape[1], n_classes)
        fit_linear_head(head, x[fit], y[fit], n_classes, C=C, precision=torch.float32)
        with torch.no_grad():
            scores.append(float((head(x[held]).argmax(1) == y[held]).double().mean()))
    return LARGE_GRID[int(np.argmax(scores))]


def linear_head(features: int, n_classes: int) -> nn.Sequential:
    """finetune's linear head: standardisation, then one linear layer."""
    return nn.Sequential(nn.BatchNorm1d(features, affine=False), nn.Linear(features, n_classes))


def head_rows(name: str, train, test, dataset, budgets, seeds, encode_seconds: float,
              pretrain_seconds: float) -> list:
    """One row per budget and seed: a linear head fitted on the cached features of the label sample."""
    n_classes, y_test = dataset.n_classes, torch.from_numpy(dataset.y_test.astype(np.int64))
    rows = []
    for budget in budgets:
        for seed in (seeds if budget.per_class is not None else seeds[:1]):  # all labels: one sample
            started = time.perf_counter()
            picked = sample_labels(dataset.y_train, budget, seed, dataset.classes)
            x, y = train[picked], torch.from_numpy(dataset.y_train[picked].astype(np.int64))
            torch.manual_seed(seed)
            head = linear_head(train.shape[1], n_classes)
            large = len(y) > CV_MOST
            C = large_budget_C(x, y, n_classes, seed) if large else None
            fit = fit_linear_head(head, x, y, n_classes, C=C, grid=GRID, seed=seed,
                                  precision=torch.float32 if large else torch.float64)
            with torch.no_grad():
                predicted = head(test).argmax(1)
            accuracy = float((predicted == y_test).double().mean())
            rows.append({"source": name, "schedule": "linear", "labels_per_class": budget.labels_per_class(n_classes),
                         "labels": len(y), "n_classes": n_classes, "seed": seed, "test_accuracy": accuracy,
                         "macro_f1": float(f1_score(y_test, predicted, average="macro")),
                         "C": fit.C, "train_seconds": round(time.perf_counter() - started, 3),
                         "encode_seconds": round(encode_seconds, 1), "pretrain_seconds": round(pretrain_seconds, 1)})
            print(f"  {name} labels {budget.label} seed {seed}: test accuracy {accuracy:.3f} (C {fit.C:g})", flush=True)
    return rows


def layer_specs(learner: str, features: int, patches: int, quick: bool, options: str = "") -> list:
    """The layer specs of ``learner`` at ``features`` and ``patches`` (``quick``: one epoch, 3 x 3 patches below),
    each with ``options`` (``"zca_eps=0.3"``) added."""
    specs = LEARNERS[learner]
    specs = [specs] if isinstance(specs, str) else list(specs)
    specs = [spec.format(F=features, Q=max(features // 4, 1), P=patches, P4=max(patches // 4, 2), G=3 if quick else 9)
             for spec in specs]
    if options:
        specs = [f"{spec},{options}" for spec in specs]
    if quick:
        specs = [spec.replace("epochs=10", "epochs=1") for spec in specs]
        specs[0] += ",patch=3"
    return specs


def controls_of(args) -> list:
    """The learners named by ``--controls``."""
    return [name for name in args.controls.split(",") if name]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="an image data spec: folder:DIR (held-out split drawn), npz:FILE, ...")
    parser.add_argument("-o", "--out", required=True, help="folder for the stacks and the report")
    parser.add_argument("--labels-per-class", default="10,100,all")
    parser.add_argument("--learners", default="kmeans,rbm,ae,patches,kmeans-nowhiten",
                        help=f"comma-separated, of {', '.join(LEARNERS)}")
    parser.add_argument("--controls", default="rbm,ae",
                        help="learners whose random: control is a row (pretrained for it if not in --learners)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--features", type=int, default=1600)
    parser.add_argument("--patches", type=int, default=400000)
    parser.add_argument("--layer-options", default="", metavar="KEY=VALUE,...",
                        help="added to every layer spec of every learner, e.g. zca_eps=0.3")
    parser.add_argument("--no-pixels", action="store_true", help="leave out the pixels row")
    parser.add_argument("--quick", action="store_true", help="tiny settings for a smoke test")
    args = parser.parse_args()
    keep_freed_memory()  # as both commands do: the encoder's maps are made and freed once per chunk
    features, patches = (16, 5000) if args.quick else (args.features, args.patches)
    learners = [name for name in args.learners.split(",") if name]
    unknown = sorted(set(learners + args.controls.split(",")) - set(LEARNERS) - {""})
    if unknown:
        parser.error(f"unknown learner {unknown[0]}: use {', '.join(LEARNERS)}")
    try:  # a bad --layer-options is one line before any pretraining, as the commands' -l
        [LayerSpec.parse(spec) for name in learners + controls_of(args)
         for spec in layer_specs(name, features, patches, args.quick, args.layer_options)]
    except LayerwiseError as error:
        parser.error(f"--layer-options {args.layer_options}: {error}")
    budgets, seeds = parse_budgets(args.labels_per_class), list(range(args.seeds))
    dataset = pretrain.load_data(args.data)
    out = Path(args.out)
    threads = f" ({torch.get_num_threads()} threads)"
    controls = args.controls.split(",")
    sources = [] if args.no_pixels else ["pixels"]
    for name in dict.fromkeys(learners + [name for name in controls if name]):  # a learner, then its control:
        stack = str(out / "stacks" / name)  # an interrupted run still has the pair
        sources += ([stack] if name in learners else []) + ([f"random:{stack}"] if name in controls else [])
    rows, pretrained = [], set()
    for text in sources:
        name = text.rpartition("/")[2] if text == "pixels" else text
        stack = text.partition("random:")[2] or text
        learner = Path(stack).name
        pretrain_seconds = 0.0
        if learner in LEARNERS and learner not in pretrained:  # a control alone needs its learner's stack too
            pretrained.add(learner)
            started = time.perf_counter()
            specs = layer_specs(learner, features, patches, args.quick, args.layer_options)
            pretrain.pretrain_stack(dataset, specs, out=stack, epochs=10, resume=True, progress=False)
            pretrain_seconds = time.perf_counter() - started
            print(f"{stack}: {' / '.join(specs)} pretrained in {pretrain_seconds:.0f} s", flush=True)
        print(text, flush=True)
        train, test, seconds = features_of(load_source(text, dataset), dataset, threads)
        rows += head_rows(name, train, test, dataset, budgets, seeds, seconds, pretrain_seconds)
        del train, test
        write_report(rows, out, {"data": args.data, "features": features, "patches": patches,
                                 "learners": {n: layer_specs(n, features, patches, args.quick, args.layer_options)
                                              for n in learners},
                                 "seeds": seeds, "threads": torch.get_num_threads()})
    print(format_table(rows))


if __name__ == "__main__":
    main()
