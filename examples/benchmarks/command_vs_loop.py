"""The `pretrain` command against a plain PyTorch loop, as a user runs them: one after the other.

Each round runs, in fresh processes and in turn, a hand-written CD-k / PCD loop
(``plain_epoch`` of ``rbm_throughput.py``: in-place updates, no optimizer, nothing
reported) and the command

    pretrain idx:FASHION -l rbm:500,momentum=0[,pcd=true|,k=3] --epochs E --batch-size 100 --lr 0.1 --val-fraction 0

with its default threads (chosen from the load at its start, right after the loop's process
ended). For each it records the median epoch; for the command also the epoch with its
monitors and checkpoint (what its log shows), and the seconds of the process outside its
training passes (imports, data, preprocessing, monitors, checkpoints, saving)::

    python examples/benchmarks/command_vs_loop.py                 # CD-1, 3 epochs, 3 rounds
    python examples/benchmarks/command_vs_loop.py --algorithms CD-1 PCD CD-3 --epochs 10
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FASHION_MNIST = "idx:/usr/share/datasets/fashion-mnist"
SPECS = {"CD-1": "rbm:500,momentum=0", "PCD": "rbm:500,momentum=0,pcd=true", "CD-3": "rbm:500,momentum=0,k=3"}


def loop_epochs(data: str, algorithm: str, epochs: int) -> list:
    """Seconds of each epoch of the plain loop (run in this process: the ``--loop`` mode)."""
    import torch
    sys.path.insert(0, str(Path(__file__).parent))
    from rbm_throughput import BATCH, HIDDEN, plain_epoch
    from pretrain.data.specs import load_data
    x = torch.from_numpy(load_data(data).x_train.reshape(-1, 784).astype("float32") / 255.0)
    torch.manual_seed(0)
    rbm = {"weight": torch.randn(HIDDEN, 784) * 0.01, "visible_bias": torch.zeros(784),
           "hidden_bias": torch.zeros(HIDDEN), "chain": torch.zeros(BATCH, HIDDEN)}
    times = []
    for _ in range(epochs):
        started = time.perf_counter()
        plain_epoch(rbm, x, algorithm)
        times.append(time.perf_counter() - started)
    return times


def command_run(data: str, algorithm: str, epochs: int) -> dict:
    """The command's median training pass, median logged epoch, wall time and seconds outside the passes."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "pretrain", data, "-l", SPECS[algorithm], "--epochs", str(epochs),
                   "--batch-size", "100", "--lr", "0.1", "--val-fraction", "0", "-o", out, "--no-plots", "-q"]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        record = json.loads((Path(out) / "stack.json").read_text())
    passes = record["seconds"]["training epochs"]
    return {"pass": passes / epochs, "logged": statistics.median(e["seconds"] for e in record["history"]),
            "outside": wall - passes, "threads": record["threads"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=FASHION_MNIST)
    parser.add_argument("--algorithms", nargs="+", default=["CD-1"], choices=sorted(SPECS))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop", help=argparse.SUPPRESS)  # the child process of one plain-loop run
    args = parser.parse_args()
    if args.loop:
        print(json.dumps(loop_epochs(args.data, args.loop, args.epochs)))
        return
    print("| algorithm | round | plain loop s/epoch | pretrain pass s/epoch | ratio | logged epoch | "
          "outside the passes | threads |")
    print("|---|---|---|---|---|---|---|---|")
    for algorithm in args.algorithms:
        ratios = []
        for round_ in range(1, args.rounds + 1):
            child = [sys.executable, __file__, "--loop", algorithm, "--epochs", str(args.epochs), "--data", args.data]
            loop = statistics.median(json.loads(subprocess.run(child, check=True, capture_output=True,
                                                               text=True).stdout))
            ours = command_run(args.data, algorithm, args.epochs)
            ratios.append(loop / ours["pass"])
            print(f"| {algorithm} | {round_} | {loop:.2f} | {ours['pass']:.2f} | {ratios[-1]:.2f}x | "
                  f"{ours['logged']:.2f} | {ours['outside']:.1f} s | {ours['threads']['threads']} "
                  f"({ours['threads']['why']}) |", flush=True)
        print(f"| {algorithm} | median | | | {statistics.median(ratios):.2f}x | | | |")


if __name__ == "__main__":
    main()
