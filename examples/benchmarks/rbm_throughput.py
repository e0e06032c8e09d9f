"""How fast layerwise trains an RBM: against scikit-learn and against the machine's matmul throughput.

One process, the 60,000 Fashion-MNIST training images scaled to [0, 1], an RBM
784 -> 500, batch 100, learning rate 0.1:

* one epoch of our trainer (``run_epoch`` on ``rbm:500``) against scikit-learn's
  ``BernoulliRBM`` (PCD, no momentum, ``n_iter=1``); our fair counterpart has
  ``momentum=0``, and is shown with CD-1 and with PCD;
* the same epoch against float32 matmul throughput measured in this run on the
  same shapes: a CD-1 step is five products of ``2 * batch * 784 * 500`` FLOPs
  (up, down, up again, and the two terms of the weight gradient);
* the test-set one-step mean-field reconstruction error after 5 epochs;
* a 784-500-500-2000 stack, one epoch per layer, against the sum of its three
  layers trained alone on precomputed inputs: the stack encodes its data once
  per layer, so the two should cost about the same.

Timings on a shared CPU are noisy: every timing is repeated, the table shows the
best run and the spread, and the ratios compare runs taken in the same process.

    python examples/benchmarks/rbm_throughput.py            # full run, a few minutes on 2 cores
    python examples/benchmarks/rbm_throughput.py --quick    # 6,000 images, 1 epoch, seconds
"""
import argparse
import time

import torch
from sklearn.neural_network import BernoulliRBM as SklearnRBM
from threadpoolctl import threadpool_info

from pretrain import pretrain_stack
from pretrain.data import load_data
from pretrain.greedy import layer_optimizer, run_epoch
from pretrain.layers import LayerSpec
from pretrain.preprocess import Preprocessing
from pretrain.stack import Stack

FASHION_MNIST = "idx:/usr/share/datasets/fashion-mnist"
HIDDEN, BATCH, LR = 500, 100, 0.1
#: our settings timed against scikit-learn's PCD without momentum, and the default one.
EPOCH_SPECS = {"CD-1, momentum 0": "rbm:500,momentum=0",
               "PCD, momentum 0 (scikit-learn's algorithm)": "rbm:500,momentum=0,pcd=true",
               "CD-1, momentum 0.5 (default)": "rbm:500"}
LABELS = {"matmul": "matmul alone (5 products per batch)", "scikit-learn": "scikit-learn BernoulliRBM (PCD)"}
RECON_SPECS = ["rbm:500", "rbm:500,momentum=0"]
STACK_SPECS = ["rbm:500", "rbm:500", "rbm:2000"]
TARGETS = {"vs_sklearn": 2.5, "of_matmul": 0.70, "recon": 0.012, "stack_ratio": 1.1}


def seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def cd1_flops(n_rows: int, n_visible: int) -> float:
    """FLOPs of the five ``batch x n_visible x n_hidden`` products of CD-1 over ``n_rows`` rows."""
    return 5 * 2 * n_rows * n_visible * HIDDEN


def matmul_seconds(n_batches: int, n_visible: int) -> float:
    """``torch.mm`` alone on CD-1's five shapes, ``n_batches`` times: the throughput a CD-1 epoch could reach."""
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


def our_epoch_seconds(x: torch.Tensor, spec: str) -> float:
    """One epoch of the trainer's own loop on a fresh layer built from ``spec``."""
    torch.manual_seed(0)
    layer = LayerSpec.parse(spec).build(x.shape[1], "unit")
    optimizer = layer_optimizer(layer, LR)
    run_epoch(layer, optimizer, x[:10 * BATCH], BATCH)  # warm-up
    return seconds(lambda: run_epoch(layer, optimizer, x, BATCH))


def sklearn_epoch_seconds(x: torch.Tensor) -> float:
    """One ``fit`` of scikit-learn's BernoulliRBM (PCD, no momentum) with the same sizes and rate."""
    rbm = SklearnRBM(n_components=HIDDEN, learning_rate=LR, batch_size=BATCH, n_iter=1, random_state=0)
    data = x.numpy()
    return seconds(lambda: rbm.fit(data))


def time_epochs(x: torch.Tensor, repeats: int) -> dict:
    """Every timing of the comparison, ``repeats`` rounds interleaved so that load spikes hit all alike."""
    times = {"matmul": [], **{name: [] for name in EPOCH_SPECS}, "scikit-learn": []}
    for _ in range(repeats):
        times["matmul"].append(matmul_seconds(len(x) // BATCH, x.shape[1]))
        for name, spec in EPOCH_SPECS.items():
            times[name].append(our_epoch_seconds(x, spec))
        times["scikit-learn"].append(sklearn_epoch_seconds(x))
        time.sleep(1.0)  # OpenBLAS threads spin a while after scikit-learn's products: let them idle
    return times


def print_speed_table(times: dict, n_rows: int, n_visible: int) -> dict:
    """Best time, spread, samples/s, speed-up over scikit-learn and share of the matmul throughput."""
    matmul_rate = cd1_flops(n_rows, n_visible) / min(times["matmul"])
    sklearn_best = min(times["scikit-learn"])
    print(f"\nOne epoch, {n_rows:,} images, 784 -> {HIDDEN}, batch {BATCH}, lr {LR}; best of "
          f"{len(times['matmul'])} (spread); matmul throughput {matmul_rate / 1e9:.0f} GFLOP/s")
    print(f"{'':46s} {'s/epoch':>8s} {'spread':>13s} {'samples/s':>10s} {'vs sklearn':>10s} {'of matmul':>9s}")
    ratios = {}
    for name, runs in times.items():
        best = min(runs)
        ratios[name] = {"vs_sklearn": sklearn_best / best,
                        "of_matmul": cd1_flops(n_rows, n_visible) / best / matmul_rate}
        print(f"{LABELS.get(name, name):46s} {best:8.2f} {min(runs):6.2f}-{max(runs):<6.2f} {n_rows / best:10,.0f} "
              f"{ratios[name]['vs_sklearn']:9.2f}x {ratios[name]['of_matmul']:8.0%}")
    return ratios


def reconstruction_errors(raw_train, raw_test, epochs: int) -> dict:
    """Test-set one-step mean-field reconstruction error (MSE per pixel) after ``epochs`` of ``pretrain_stack``."""
    errors = {}
    for spec in RECON_SPECS:
        stack = pretrain_stack(raw_train, [spec], epochs=epochs, val_fraction=0.0, device="cpu", progress=False)
        with torch.no_grad():
            errors[spec] = float(stack.layers[0].reconstruction_error(stack.preprocess(raw_test)))
    return errors


def stack_cost(raw_train, repeats: int) -> tuple:
    """Best seconds for the whole stack, one epoch per layer, and for each layer alone on precomputed inputs.

    The inputs of layer k alone are the codes of the stack's layers below k,
    computed before the clock starts; both runs hold out the same 5%.
    """
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
    parser.add_argument("--quick", action="store_true", help="6,000 images, 1 epoch, 1 repeat: a smoke test")
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds (best and spread are shown)")
    args = parser.parse_args()
    n_images, epochs, repeats = (6000, 1, 1) if args.quick else (None, 5, args.repeats)

    dataset = load_data(args.data)
    raw_train, raw_test = dataset.x_train[:n_images], dataset.x_test
    x = Preprocessing.fit(raw_train, "unit")(raw_train)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy BLAS: {numpy_blas()}")

    ratios = print_speed_table(time_epochs(x, repeats), *x.shape)
    errors = reconstruction_errors(raw_train, raw_test, epochs)
    print(f"\nTest-set reconstruction error (MSE per pixel) after {epochs} epochs "
          f"(target <= {TARGETS['recon']}):")
    for spec, error in errors.items():
        print(f"  {spec:22s} {error:.4f}")
    whole, alone = stack_cost(raw_train, repeats)
    print(f"\n784-500-500-2000 stack, one epoch per layer: {whole:.2f} s; layers alone on precomputed inputs "
          f"{' + '.join(f'{s:.2f}' for s in alone)} = {sum(alone):.2f} s; ratio {whole / sum(alone):.2f} "
          f"(target <= {TARGETS['stack_ratio']})")

    fair = ratios["CD-1, momentum 0"]
    print(f"\nTargets: {fair['vs_sklearn']:.2f}x scikit-learn (>= {TARGETS['vs_sklearn']}), "
          f"{fair['of_matmul']:.0%} of matmul (>= {TARGETS['of_matmul']:.0%}), "
          f"best reconstruction {min(errors.values()):.4f} (<= {TARGETS['recon']}), "
          f"stack ratio {whole / sum(alone):.2f} (<= {TARGETS['stack_ratio']})")


if __name__ == "__main__":
    main()
