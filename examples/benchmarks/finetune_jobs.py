"""`finetune --jobs 2` against `--jobs 1`, as a user runs them: whole commands, in turn.

Each round runs, in fresh processes, the comparison of the README's quick start

    finetune digits --from STACK --from random:STACK --labels-per-class 1,2,5,10 --seeds 3 --jobs J

with J = 1 and then J = 2 (each with its default threads), records the wall time of each and
checks that both print the same table. The stack (the quick start's 64-128-64 DBN) is
pretrained once, first::

    python examples/benchmarks/finetune_jobs.py                # 3 rounds
    python examples/benchmarks/finetune_jobs.py --rounds 5 --threads 1
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = ["--labels-per-class", "1,2,5,10", "--seeds", "3"]


def timed(command: list) -> tuple:
    """(wall seconds, stdout) of ``command``."""
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - started, done.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="--threads for both commands (0: their default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        stack = str(Path(folder, "dbn"))
        subprocess.run([sys.executable, "-m", "pretrain", "digits", "-l", "rbm:128,momentum=0.9", "-l",
                        "rbm:64,momentum=0.9", "--epochs", "30", "-o", stack, "--no-plots", "-q"], check=True)
        command = [sys.executable, "-m", "finetune", "digits", "--from", stack, "--from", f"random:{stack}", *GRID,
                   "--threads", str(args.threads), "--quiet"]
        print("| round | --jobs 1 s | --jobs 2 s | ratio | same table |")
        print("|---|---|---|---|---|")
        ratios = []
        for round_ in range(1, args.rounds + 1):
            one, table_one = timed([*command, "--jobs", "1"])
            two, table_two = timed([*command, "--jobs", "2"])
            ratios.append(one / two)
            print(f"| {round_} | {one:.1f} | {two:.1f} | {ratios[-1]:.2f}x | {table_one == table_two} |", flush=True)
        print(f"| median | | | {statistics.median(ratios):.2f}x | |")


if __name__ == "__main__":
    main()
