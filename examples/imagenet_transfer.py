"""Greedy unsupervised pretraining beside ImageNet transfer, on Fashion-MNIST (or digits).

Sources compared with the same head, schedules and label samples:
* a DBN pretrained here on the unlabeled training images, and its random-init control;
* torchvision's resnet18 as an architecture (``@none``), or with ImageNet weights
  (``--imagenet``: needs the weights in torch's cache, see the README).

    python examples/imagenet_transfer.py                 # Fashion-MNIST, ~half an hour on 2 CPU cores
    python examples/imagenet_transfer.py --imagenet      # also torchvision:resnet18 (ImageNet weights)
    python examples/imagenet_transfer.py --quick         # digits, tiny settings, seconds
"""
import argparse

import finetune
import pretrain
from finetune.study.report import format_table

FASHION = "idx:/usr/share/datasets/fashion-mnist"  # apt-get install -y dataset-fashion-mnist


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=FASHION)
    parser.add_argument("--out", default="runs/imagenet-transfer")
    parser.add_argument("--imagenet", action="store_true", help="add resnet18 with its ImageNet weights")
    parser.add_argument("--quick", action="store_true", help="digits and tiny settings, for a smoke test")
    args = parser.parse_args()
    data = "digits" if args.quick else args.data
    layers, epochs = (["rbm:64"], 2) if args.quick else (["rbm:1000", "rbm:500", "rbm:250"], 10)

    stack = f"{args.out}/dbn"
    pretrain.pretrain_stack(data, layers, out=stack, epochs=epochs, resume=True, progress=not args.quick)

    # --quick cuts resnet18 after layer2: its top group then trains 0.5M weights, not layer4's 8M.
    sources = [stack, f"random:{stack}", "torchvision:resnet18@none" + (":layer2" if args.quick else "")]
    if args.imagenet:
        sources.append("torchvision:resnet18")
    rows = finetune.compare(data, sources, ["linear", "two-stage"], "5" if args.quick else "10,100",
                            seeds=1, input_size=16 if args.quick else 32, unfreeze=1, epochs=3 if args.quick else 30)
    print(format_table(rows))
    finetune.write_report(rows, f"{args.out}/report")


if __name__ == "__main__":
    main()
