"""The RBM trainer on a GPU: its share of the GPU's own matmul throughput, and its speed against the CPU.

One epoch of ``rbm:500,momentum=0`` (CD-1) over the 60,000 Fashion-MNIST training images, the data
already on the device, at batch 1000 and batch 100, against ``torch.mm`` alone on CD-1's five
products of the same shapes on the same device ("of matmul"), and the same epoch on the CPU at
batch 100 with the CPU's default threads. Targets (issue 18, section 5): at batch 1000 at least 50%
of the matmul throughput; at batch 100 at least 20x the CPU. Best of ``--repeats``, each timing
closed by ``torch.cuda.synchronize``::

    python examples/benchmarks/gpu_throughput.py                 # on CUDA (what gpu_check.sh runs)
    python examples/benchmarks/gpu_throughput.py --device cpu --rows 6000 --repeats 1   # a smoke run
"""
import argparse
import time

import torch

from pretrain.core.memory import keep_freed_memory
from pretrain.data.specs import load_data
from pretrain.layers import LayerSpec
from pretrain.training.epoch import layer_optimizer, run_epoch

FASHION_MNIST = "idx:/usr/share/datasets/fashion-mnist"
SPEC, HIDDEN, LR = "rbm:500,momentum=0", 500, 0.1


def synchronized(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(run, device: torch.device, repeats: int) -> float:
    run()  # warm-up: kernels chosen, memory allocated
    synchronized(device)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        synchronized(device)
        best = min(best, time.perf_counter() - started)
    return best


def epoch_seconds(x: torch.Tensor, batch: int, device: torch.device, repeats: int) -> float:
    torch.manual_seed(0)
    layer = LayerSpec.parse(SPEC).build(x.shape[1], "unit").to(device)
    optimizer = layer_optimizer(layer, LR)
    x = x.to(device)
    return best_seconds(lambda: run_epoch(layer, optimizer, x, batch, with_loss=False), device, repeats)


def matmul_seconds(n_rows: int, n_visible: int, batch: int, device: torch.device, repeats: int) -> float:
    """CD-1's five products per minibatch (up, down, up, two weight correlations), ``n_rows / batch`` times."""
    weight = torch.rand(HIDDEN, n_visible, device=device)
    visible, hidden = torch.rand(batch, n_visible, device=device), torch.rand(batch, HIDDEN, device=device)

    def products():
        for _ in range(n_rows // batch):
            torch.mm(visible, weight.t())
            torch.mm(hidden, weight)
            torch.mm(visible, weight.t())
            torch.mm(hidden.t(), visible)
            torch.mm(hidden.t(), visible)
    return best_seconds(products, device, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rows", type=int, default=60000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    keep_freed_memory()
    device = torch.device(args.device)
    raw = load_data(FASHION_MNIST).x_train[:args.rows]
    x = torch.from_numpy(raw.reshape(len(raw), -1).astype("float32") / 255.0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {name}; CPU threads {torch.get_num_threads()}; {len(x):,} images, "
          f"{SPEC}, best of {args.repeats}")
    print("| batch | device epoch s | samples/s | matmul alone s | of matmul | CPU epoch s | vs CPU |")
    print("|---|---|---|---|---|---|---|")
    for batch in (1000, 100):
        ours = epoch_seconds(x, batch, device, args.repeats)
        products = matmul_seconds(len(x), x.shape[1], batch, device, args.repeats)
        cpu = epoch_seconds(x, batch, torch.device("cpu"), 1) if batch == 100 else None
        cpu_cells = f"{cpu:.2f} | {cpu / ours:.1f}x" if cpu else " | "
        print(f"| {batch} | {ours:.3f} | {len(x) / ours:,.0f} | {products:.3f} | {products / ours:.0%} | {cpu_cells} |",
              flush=True)


if __name__ == "__main__":
    main()
