"""Two processes under torchrun against one, as a user runs them: whole commands, in turn.

Each round runs, in fresh processes, one thread each (``OMP_NUM_THREADS=1 --threads 1``),

    pretrain npz:FASHION -l rbm:500 --batch-size 1000 --epochs 10 --profile -o OUT
    torchrun --standalone --nproc_per_node 2 -m pretrain npz:FASHION ...   (the same)

where FASHION holds the 60,000 Fashion-MNIST training images (written once, first, from the IDX
files). It records each command's wall time (torchrun's own start included) and, from the
``--profile`` table, where rank 0's seconds went; it prints the medians and the speed-up::

    python examples/benchmarks/torchrun_speed.py              # 3 rounds of 10 epochs
    python examples/benchmarks/torchrun_speed.py --rounds 5 --epochs 3 --data idx:/path/to/fashion-mnist
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FASHION_MNIST = "idx:/usr/share/datasets/fashion-mnist"
ARGS = ["-l", "rbm:500", "--batch-size", "1000", "--threads", "1", "--profile"]
LAUNCHERS = {"1 process": [sys.executable, "-m", "pretrain"],
             "torchrun, 2 processes": [str(Path(sys.executable).parent / "torchrun"), "--standalone",
                                       "--nproc_per_node", "2", "-m", "pretrain"]}


def training_images(spec: str, folder: str) -> str:
    """The training images of ``spec`` as ``npz:FILE`` (array ``x``), as the issue's command reads them."""
    from pretrain.data.specs import load_data
    path = Path(folder, "fashion.npz")
    np.savez(path, x=load_data(spec).x_train)
    return f"npz:{path}"


#: a row of ``--profile``'s table: ``  training epochs     13.14 s  63.1%``
PROFILE_ROW = re.compile(r"^\s+(\S.*?)\s+([\d.]+) s\s+[\d.]+%$")


def timed_run(launcher: list, data: str, epochs: int, out: str) -> dict:
    """Wall seconds of one command, with the seconds of rank 0's phases (its ``--profile`` table)."""
    started = time.perf_counter()
    done = subprocess.run([*launcher, data, *ARGS, "--epochs", str(epochs), "-o", out, "--overwrite"], check=True, capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - started
    rows = (PROFILE_ROW.match(line) for line in done.stderr.splitlines())
    return {"wall": wall, **{row[1]: float(row[2]) for row in rows if row}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--data", default=FASHION_MNIST, help="a data spec whose training images are used")
    args = parser.parse_args()
    runs = {name: [] for name in LAUNCHERS}
    with tempfile.TemporaryDirectory() as folder:
        data = training_images(args.data, folder)
        for round_ in range(args.rounds):
            for name, launcher in LAUNCHERS.items():
                runs[name].append(timed_run(launcher, data, args.epochs, str(Path(folder, "out"))))
                print(f"round {round_ + 1} {name}: {runs[name][-1]['wall']:.2f} s", flush=True)
    phases = sorted({key for records in runs.values() for record in records for key in record} - {"wall"})
    print(f"\nmedian seconds over {args.rounds} rounds (phases: rank 0's --profile)")
    print(f"| {'':32} | " + " | ".join(LAUNCHERS) + " |")
    for key in ["wall", *phases]:
        cells = [statistics.median(record.get(key, 0.0) for record in runs[name]) for name in LAUNCHERS]
        print(f"| {key:32} | " + " | ".join(f"{cell:.2f}" for cell in cells) + " |")
    one, two = (statistics.median(record["wall"] for record in runs[name]) for name in LAUNCHERS)
    ratios = [a["wall"] / b["wall"] for a, b in zip(*runs.values())]
    print(f"\nspeed-up of 2 processes, whole command: {one / two:.2f}x (per round: "
          + ", ".join(f"{r:.2f}" for r in ratios) + ")")


if __name__ == "__main__":
    main()
