"""How fast layerwise trains an RBM: against a plain PyTorch loop, scikit-learn, learnergy and matmul.

One process; every timing is repeated in interleaved rounds (so that a load
spike hits all alike) and the tables show the best round and the spread.

1. One epoch over the 60,000 Fashion-MNIST training images scaled to [0, 1],
   RBM 784 -> 500, batch 100, learning rate 0.1, no momentum:
   * a plain hand-written loop (CD-1, PCD, CD-3; in-place updates, no optimizer);
   * layerwise's trainer (``run_epoch``: closed-form gradient into ``.grad``,
     then its own fused SGD, :mod:`pretrain.training.sgd`) on the same three algorithms;
   * scikit-learn's ``BernoulliRBM`` (PCD) and learnergy's ``RBM`` (CD-1,
     autograd of the free-energy gap), when installed;
   * float32 matmul alone on the step's shapes: a CD-k step is ``3 + 2k``
     products of ``2 * batch * n_visible * n_hidden`` FLOPs (PCD: 5), and
     "of matmul" is the share of that measured throughput an epoch reaches.
2. Small minibatches, as scikit-learn's RBM example: the 8x8 digits, 100
   components, batch 10, learning rate 0.06, 10 iterations; our drop-in
   ``pretrain.sklearn.BernoulliRBM`` against scikit-learn's, float32 and float64.
3. The test-set reconstruction error after 5 epochs, and a 784-500-500-2000
   stack, one epoch per layer, against its layers trained alone on precomputed
   inputs (the stack encodes its data once per layer: the two should match).

    python examples/benchmarks/rbm_throughput.py              # a few minutes on 2 cores
    python examples/benchmarks/rbm_throughput.py --quick      # 6,000 images, seconds
    python examples/benchmarks/rbm_throughput.py --threads 1  # torch's threads (default: torch's choice)
"""
import argparse
import importlib.util
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.neural_network import BernoulliRBM as SklearnRBM
from threadpoolctl import threadpool_info, threadpool_limits

from pretrain.core.memory import keep_freed_memory
from pretrain import pretrain_stack
from pretrain.data.specs import load_data
from pretrain.training.epoch import layer_optimizer, run_epoch
from pretrain.layers import LayerSpec
from pretrain.layers.energy import bernoulli_sample
from pretrain.data.preprocess import Preprocessing
from pretrain.sklearn import BernoulliRBM
from pretrain.training.stack import Stack

FASHION_MNIST = "idx:/usr/share/datasets/fashion-mnist"
HIDDEN, BATCH, LR = 500, 100, 0.1
#: algorithm -> (Gibbs steps, persistent chains, matrix products per step).
ALGORITHMS = {"CD-1": (1, False, 5), "PCD": (1, True, 5), "CD-3": (3, False, 9)}
LAYERWISE = {"CD-1": "rbm:500,momentum=0", "PCD": "rbm:500,momentum=0,pcd=true", "CD-3": "rbm:500,momentum=0,k=3"}
SMALL = dict(n_components=100, learning_rate=0.06, batch_size=10, n_iter=10)
RECON_SPECS = ["rbm:500", "rbm:500,momentum=0"]
STACK_SPECS = ["rbm:500", "rbm:500", "rbm:2000"]


def seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def product_flops(n_rows: int, n_visible: int) -> float:
    """FLOPs of one ``batch x n_visible x n_hidden`` product summed over an epoch of ``n_rows``."""
    return 2 * n_rows * n_visible * HIDDEN


def matmul_seconds(n_batches: int, n_visible: int) -> float:
    """``torch.mm`` alone on CD-1's five shapes, ``n_batches`` times: the throughput an epoch could reach."""
    weight = torch.rand(HIDDEN, n_visible)
    visible, hidden = torch.rand(BATCH, n_visible), torch.rand(BATCH, HIDDEN)

    def products():
        for _ in range(n_batches):
            torch.mm(visible, weight.t())   # data up
            torch.mm(hidden, weight)        # down
            torch.mm(visible, weight.t())   # model up
            torch.mm(hidden.t(), visible)   # weight gradient, model term
            torch.mm(hidden.t(), visible)   # weight gradient, data term

    products()  # warm-up
    return seconds(products)


@torch.no_grad()
def plain_epoch(rbm: dict, x: torch.Tensor, algorithm: str) -> None:
    """CD-k or PCD written out by hand, as a user would: the update applied in place, no optimizer.

    The same algorithm as the ``rbm`` layer with ``momentum=0``: the chain ends at
    the visible means, PCD keeps ``rbm["chain"]`` across batches.
    """
    k, pcd, _ = ALGORITHMS[algorithm]
    weight, visible_bias, hidden_bias = rbm["weight"], rbm["visible_bias"], rbm["hidden_bias"]
    order = torch.randperm(len(x))
    for start in range(0, len(x), BATCH):
        v = x.index_select(0, order[start:start + BATCH])
        h_data = torch.addmm(hidden_bias, v, weight.t()).sigmoid_()
        h = rbm["chain"] if pcd else bernoulli_sample(h_data)
        for step in range(k):
            v_model = torch.addmm(visible_bias, h, weight).sigmoid_()
            if step < k - 1:
                v_model = bernoulli_sample(v_model)
            h_model = torch.addmm(hidden_bias, v_model, weight.t()).sigmoid_()
            if step < k - 1 or pcd:
                h = bernoulli_sample(h_model)
        rbm["chain"] = h
        rate = LR / len(v)
        weight.addmm_(h_data.t(), v, alpha=rate).addmm_(h_model.t(), v_model, alpha=-rate)
        visible_bias.add_(v.sum(0).sub_(v_model.sum(0)), alpha=rate)
        hidden_bias.add_(h_data.sum(0).sub_(h_model.sum(0)), alpha=rate)


def plain_seconds(x: torch.Tensor, algorithm: str) -> float:
    torch.manual_seed(0)
    rbm = {"weight": torch.randn(HIDDEN, x.shape[1]) * 0.01, "visible_bias": torch.zeros(x.shape[1]),
           "hidden_bias": torch.zeros(HIDDEN), "chain": torch.zeros(BATCH, HIDDEN)}
    plain_epoch(rbm, x[:10 * BATCH], algorithm)  # warm-up
    return seconds(lambda: plain_epoch(rbm, x, algorithm))


def layerwise_seconds(x: torch.Tensor, algorithm: str) -> float:
    """One epoch of the trainer's own loop on a fresh layer."""
    torch.manual_seed(0)
    layer = LayerSpec.parse(LAYERWISE[algorithm]).build(x.shape[1], "unit")
    optimizer = layer_optimizer(layer, LR)
    run_epoch(layer, optimizer, x[:10 * BATCH], BATCH)  # warm-up
    return seconds(lambda: run_epoch(layer, optimizer, x, BATCH))


def sklearn_seconds(x: torch.Tensor) -> float:
    """One ``fit`` of scikit-learn's BernoulliRBM (PCD, no momentum) with the same sizes and rate."""
    rbm = SklearnRBM(n_components=HIDDEN, learning_rate=LR, batch_size=BATCH, n_iter=1, random_state=0)
    data = x.numpy()
    return seconds(lambda: rbm.fit(data))


def learnergy_seconds(x: torch.Tensor) -> float:
    """One epoch of learnergy's RBM (CD-1; autograd of the free-energy gap through a DataLoader)."""
    from learnergy.models.bernoulli import RBM
    from torch.utils.data import TensorDataset
    torch.manual_seed(0)
    rbm = RBM(n_visible=x.shape[1], n_hidden=HIDDEN, steps=1, learning_rate=LR)
    data = TensorDataset(x, torch.zeros(len(x)))
    return seconds(lambda: rbm.fit(data, batch_size=BATCH, epochs=1))


def epoch_rows(x: torch.Tensor, repeats: int) -> list:
    """(label, products per step, seconds of every round) for the epoch table, rounds interleaved."""
    runs = {("matmul", "float32 matmul alone (CD-1's 5 products)", 5): [], ("sklearn", "scikit-learn BernoulliRBM (PCD)", 5): []}
    for name, (_, _, products) in ALGORITHMS.items():
        runs[("plain " + name, f"plain PyTorch loop, {name}", products)] = []
        runs[("layerwise " + name, f"layerwise {name}", products)] = []
    if importlib.util.find_spec("learnergy"):
        runs[("learnergy", "learnergy 2.0.2 RBM (CD-1)", 5)] = []
    for _ in range(repeats):
        for key, times in runs.items():
            name = key[0]
            if name == "matmul":
                times.append(matmul_seconds(len(x) // BATCH, x.shape[1]))
            elif name == "sklearn":
                times.append(sklearn_seconds(x))
            elif name == "learnergy":
                times.append(learnergy_seconds(x))
            else:
                kind, algorithm = name.split()
                times.append((plain_seconds if kind == "plain" else layerwise_seconds)(x, algorithm))
        time.sleep(1.0)  # OpenBLAS threads spin a while after scikit-learn's products: let them idle
    return [(key, times) for key, times in runs.items()]


def print_epoch_table(rows: list, n_rows: int, n_visible: int) -> dict:
    """s/epoch, samples/s, speed against scikit-learn and the plain loop, share of the matmul throughput."""
    best = {key[0]: min(times) for key, times in rows}
    matmul_rate = 5 * product_flops(n_rows, n_visible) / best["matmul"]
    print(f"\nOne epoch, {n_rows:,} images, {n_visible} -> {HIDDEN}, batch {BATCH}, lr {LR}, momentum 0; best of "
          f"{len(rows[0][1])} rounds (spread); float32 matmul {matmul_rate / 1e9:.0f} GFLOP/s")
    print(f"| {'':42s} | s/epoch (spread) | samples/s | vs scikit-learn | vs plain loop | of matmul |")
    print(f"|{'-' * 44}|------------------|-----------|-----------------|---------------|-----------|")
    ratios = {}
    for (name, label, products), times in rows:
        plain = best.get("plain " + name.split()[-1]) if name.startswith("layerwise") else None
        ratios[name] = plain / best[name] if plain else None
        of_matmul = products * product_flops(n_rows, n_visible) / best[name] / matmul_rate
        print(f"| {label:42s} | {best[name]:5.2f} ({min(times):.2f}-{max(times):.2f}) | {n_rows / best[name]:9,.0f} | "
              f"{best['sklearn'] / best[name]:14.2f}x | {f'{ratios[name]:.2f}x' if plain else '':>13s} | "
              f"{of_matmul:8.0%} |")
    return ratios


def small_batch_rows(repeats: int) -> dict:
    """Seconds of ``fit`` on the 8x8 digits at batch 10, ours and scikit-learn's, float32 and float64."""
    X = load_digits().data / 16.0
    fits = {(ours, dtype): [] for ours in (True, False) for dtype in ("float32", "float64")}
    for round_ in range(repeats + 1):  # round 0 warms both up
        for (ours, dtype), times in fits.items():
            estimator = (BernoulliRBM if ours else SklearnRBM)(random_state=0, **SMALL)
            data = X.astype(dtype)
            elapsed = seconds(lambda: estimator.fit(data))
            if round_:
                times.append(elapsed)
    return fits


def print_small_table(fits: dict) -> None:
    print(f"\nThe 8x8 digits (1,797 images), {SMALL['n_components']} components, batch {SMALL['batch_size']}, "
          f"lr {SMALL['learning_rate']}, {SMALL['n_iter']} iterations: seconds per fit, best (spread)")
    for dtype in ("float32", "float64"):
        ours, theirs = fits[(True, dtype)], fits[(False, dtype)]
        print(f"  {dtype}: pretrain.sklearn.BernoulliRBM {min(ours):.3f} ({min(ours):.3f}-{max(ours):.3f}), "
              f"scikit-learn {min(theirs):.3f} ({min(theirs):.3f}-{max(theirs):.3f}): "
              f"{min(ours) / min(theirs):.2f}x scikit-learn's time")


def reconstruction_errors(raw_train, raw_test, epochs: int) -> dict:
    """Test-set one-step mean-field reconstruction error (MSE per pixel) after ``epochs`` of ``pretrain_stack``."""
    errors = {}
    for spec in RECON_SPECS:
        stack = pretrain_stack(raw_train, [spec], epochs=epochs, val_fraction=0.0, device="cpu", progress=False)
        with torch.no_grad():
            errors[spec] = float(stack.layers[0].reconstruction_error(stack.preprocess(raw_test)))
    return errors


def stack_cost(raw_train, repeats: int) -> tuple:
    """Best seconds for the whole stack, one epoch per layer, and for each layer alone on precomputed inputs."""
    settings = dict(epochs=1, device="cpu", progress=False)
    stack = pretrain_stack(raw_train, STACK_SPECS, **settings)
    inputs = [Stack(stack.layers[:k], stack.preprocessing, {}).transform(raw_train) if k else raw_train
              for k in range(len(STACK_SPECS))]
    whole, alone = [], [[] for _ in STACK_SPECS]
    for _ in range(repeats):
        whole.append(seconds(lambda: pretrain_stack(raw_train, STACK_SPECS, **settings)))
        for k, spec in enumerate(STACK_SPECS):
            alone[k].append(seconds(lambda: pretrain_stack(inputs[k], [spec], **settings)))
    return min(whole), [min(runs) for runs in alone]


def numpy_blas() -> str:
    """numpy's BLAS and its thread count, which is what scikit-learn's RBM runs on."""
    found = [i for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]]
    return ", ".join(f"{i['internal_api']} {i['num_threads']} threads" for i in found) or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=FASHION_MNIST, help="data spec (default: Fashion-MNIST IDX files)")
    parser.add_argument("--quick", action="store_true", help="6,000 images, 1 round, no quality checks")
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds (best and spread are shown)")
    parser.add_argument("--threads", type=int, default=0, help="torch and BLAS threads (0: their defaults)")
    args = parser.parse_args()
    keep_freed_memory()  # as the commands set their process (pretrain.core.memory): loops and trainer alike
    n_images, repeats = (6000, 1) if args.quick else (None, args.repeats)
    if args.threads:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)

    dataset = load_data(args.data)
    raw_train, raw_test = dataset.x_train[:n_images], dataset.x_test
    x = Preprocessing.fit(raw_train, "unit")(raw_train)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy BLAS: {numpy_blas()}")
    print_epoch_table(epoch_rows(x, repeats), *x.shape)
    print_small_table(small_batch_rows(repeats))
    if args.quick:
        return
    errors = reconstruction_errors(raw_train, raw_test, epochs=5)
    print("\nTest-set reconstruction error (MSE per pixel) after 5 epochs: "
          + ", ".join(f"{spec} {error:.4f}" for spec, error in errors.items()))
    whole, alone = stack_cost(raw_train, repeats)
    print(f"\n784-500-500-2000 stack, one epoch per layer: {whole:.2f} s; layers alone on precomputed inputs "
          f"{' + '.join(f'{s:.2f}' for s in alone)} = {sum(alone):.2f} s; ratio {whole / sum(alone):.2f}")


if __name__ == "__main__":
    main()
