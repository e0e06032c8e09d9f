"""Patch-autoencoder variants at 1,600 features on a CIFAR-10 subset, each probed by the table's linear head at 10 and
100 labels per class (label samples 0 and 1): OMP_NUM_THREADS=1 python explore.py OUT SPEC...

The subset: 10,000 training and 2,000 test images drawn (numpy seed 0) from the held-out split's two parts,
saved as /tmp/cifar_small.npz from the table's CIFAR.npz by

    d = np.load("CIFAR.npz"); rng = np.random.default_rng(0)
    i, j = rng.permutation(len(d["x_train"]))[:10000], rng.permutation(len(d["x_test"]))[:2000]
    np.savez("/tmp/cifar_small.npz", x_train=d["x_train"][i], y_train=d["y_train"][i],
             x_test=d["x_test"][j], y_test=d["y_test"][j])

Each line of results.txt is one SPEC.
"""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # examples/, for cifar10_table
import pretrain
from cifar10_table import features_of, head_rows
from finetune.networks.sources import load_source
from finetune.study.budget import parse_budgets
from pretrain.core.memory import keep_freed_memory
keep_freed_memory()
out = sys.argv[1]
data = pretrain.load_data("npz:/tmp/cifar_small.npz")
for i, spec in enumerate(sys.argv[2:]):
    stack = f"{out}/s{i}"
    t = time.perf_counter()
    pretrain.pretrain_stack(data, [spec], out=stack, epochs=10, resume=True, progress=False)
    pt = time.perf_counter() - t
    info = json.load(open(f"{stack}/stack.json"))
    hist = info.get("history", [])[-1] if info.get("history") else {}
    train, test, secs = features_of(load_source(stack, data), data, "")
    rows = head_rows(spec, train, test, data, parse_budgets("10,100"), [0, 1], secs, pt)
    acc = {b: sum(r["test_accuracy"] for r in rows if r["labels_per_class"] == b) / 2 for b in (10, 100)}
    line = f"{spec}  pretrain {pt:.0f}s  recon {hist.get('recon_train')}  acc10 {acc[10]:.3f} acc100 {acc[100]:.3f}"
    print("RESULT", line, flush=True)
    open(f"{out}/results.txt", "a").write(line + "\n")
