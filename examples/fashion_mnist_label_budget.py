"""Fashion-MNIST: does a DBN pretrained without labels beat its random-init control with few labels?

    python examples/fashion_mnist_label_budget.py            # 60,000 images: minutes of pretraining on 2 cores
    python examples/fashion_mnist_label_budget.py --quick    # 3,000 images, 10 labels per class: ~30 s

The full study, with 3 seeds and a README table: examples/benchmarks/label_budget.py.
"""
import argparse
import dataclasses

import finetune
import pretrain
from finetune.study.report import format_table
from pretrain.data.specs import load_data


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="idx:/usr/share/datasets/fashion-mnist")
    parser.add_argument("--out", default="runs/fashion-mnist-example")
    parser.add_argument("--quick", action="store_true", help="3,000 training images, 10 labels per class")
    args = parser.parse_args()
    data = load_data(args.data)
    if args.quick:  # the first 3,000 training images both pretrain and supply the labels
        data = dataclasses.replace(data, x_train=data.x_train[:3000], y_train=data.y_train[:3000])
    epochs, budgets, fine_tune_epochs = (10, "10", 5) if args.quick else (10, "10,100", 100)

    # 1. Greedy layer-wise pretraining on the training images only (labels unused).
    pretrain.pretrain_stack(data, ["rbm:1000", "rbm:500", "rbm:250"], out=f"{args.out}/dbn",
                            epochs=epochs, overwrite=True, progress=False)

    # 2. The same two-stage fine-tuning (head, then everything) for the stack and its random-init control.
    rows = finetune.compare(data, [f"{args.out}/dbn", f"random:{args.out}/dbn"], ["two-stage"], budgets,
                            seeds=1, epochs=fine_tune_epochs)
    print(format_table(rows))


if __name__ == "__main__":
    main()
