"""Digits end to end: pretrain a DBN without labels, fine-tune it with a few labels, compare with its control.

    python examples/digits_end_to_end.py            # about a minute on 2 CPU cores
    python examples/digits_end_to_end.py --quick    # seconds: the smoke test's settings
"""
import argparse

import finetune
import pretrain
from finetune.study.report import format_table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/digits-example")
    parser.add_argument("--quick", action="store_true", help="tiny settings for a smoke test")
    args = parser.parse_args()
    epochs, budgets, seeds = (2, "1,5", 1) if args.quick else (30, "1,5,10", 3)

    # 1. Greedy layer-wise pretraining on the training images only (labels unused).
    pretrain.pretrain_stack("digits", ["rbm:256", "rbm:128"], out=f"{args.out}/dbn",
                            epochs=epochs, overwrite=True, progress=False)

    # 2. The same fine-tuning for the pretrained stack and its random-init control.
    rows = finetune.compare("digits", [f"{args.out}/dbn", f"random:{args.out}/dbn"],
                            ["linear", "two-stage"], budgets, seeds=seeds)

    # 3. Mean ± std test accuracy over seeds; results.json/csv/md and learning_curves.png.
    print(format_table(rows))
    finetune.write_report(rows, f"{args.out}/report")


if __name__ == "__main__":
    main()
