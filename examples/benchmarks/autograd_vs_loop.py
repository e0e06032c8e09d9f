"""The trainer's epoch against a plain autograd loop, for the kinds that train by autograd (and the crbm).

For a denoising autoencoder (``ae:500,noise=mask:0.3``, dense), a convolutional one (``cae:32``:
5 x 5 filters, ReLU, max-pool, mask noise 0.3, tied) and a convolutional RBM (``crbm:32``, CD-1), a
loop written by hand as a user would (the same corruption, code, reconstruction and loss;
``loss.backward()`` and ``torch.optim.Adam``; for the crbm the CD-1 correlations by
``torch.nn.grad.conv2d_weight`` and an in-place update) and ``run_epoch`` as ``pretrain`` runs it
alternate epoch by epoch (AB, BA, ...) on the first Fashion-MNIST training images, batch 100, and
the table gives each one's median epoch and the loop's over the trainer's::

    python examples/benchmarks/autograd_vs_loop.py                   # ae, cae, crbm: 6 epochs each
    python examples/benchmarks/autograd_vs_loop.py --kinds cae --rows 5000 --rounds 4
"""
import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_weight

sys.path.insert(0, str(Path(__file__).parent))
from trainer_vs_loop import medians_in_turn  # noqa: E402

from pretrain.core.memory import keep_freed_memory  # noqa: E402
from pretrain.data.specs import load_data  # noqa: E402
from pretrain.layers import LayerSpec  # noqa: E402
from pretrain.training.epoch import layer_optimizer, run_epoch  # noqa: E402

FASHION_MNIST = "idx:/usr/share/datasets/fashion-mnist"
BATCH, MASK = 100, 0.3
SPECS = {"ae": "ae:500,noise=mask:0.3", "cae": "cae:32", "crbm": "crbm:32,momentum=0"}
ROWS = {"ae": 30000, "cae": 6000, "crbm": 6000}  # about a second or two an epoch each at 2 threads


def masked(v: torch.Tensor) -> torch.Tensor:
    return v * (torch.rand_like(v) >= MASK).to(v.dtype)


def ae_loss(p: dict, v: torch.Tensor) -> torch.Tensor:
    h = torch.sigmoid(F.linear(masked(v), p["weight"], p["hidden_bias"]))
    r = F.linear(h, p["weight"].t(), p["visible_bias"])
    return F.binary_cross_entropy_with_logits(r, v, reduction="sum") / len(v)


def cae_loss(p: dict, v: torch.Tensor) -> torch.Tensor:
    code = F.max_pool2d(torch.relu(F.conv2d(masked(v), p["weight"], p["hidden_bias"], padding=2)), 2)
    r = F.conv_transpose2d(F.interpolate(code, size=v.shape[2:], mode="nearest"), p["weight"], p["visible_bias"],
                           padding=2)
    return F.binary_cross_entropy_with_logits(r, v, reduction="sum") / len(v)


def autograd_epoch(loss, p: dict, optimizer, x: torch.Tensor) -> None:
    for rows in torch.randperm(len(x)).split(BATCH):
        optimizer.zero_grad(set_to_none=True)
        loss(p, x[rows]).backward()
        optimizer.step()


@torch.no_grad()
def crbm_epoch(p: dict, x: torch.Tensor, lr: float) -> None:
    """CD-1 of a binary convolutional RBM, the correlations in closed form, the update in place."""
    weight, visible_bias, hidden_bias = p["weight"], p["visible_bias"], p["hidden_bias"]
    for rows in torch.randperm(len(x)).split(BATCH):
        v = x[rows]
        h_data = torch.sigmoid(F.conv2d(v, weight, hidden_bias, padding=2))
        h = (torch.rand_like(h_data) < h_data).to(v.dtype)
        v_model = torch.sigmoid(F.conv_transpose2d(h, weight, visible_bias, padding=2))
        h_model = torch.sigmoid(F.conv2d(v_model, weight, hidden_bias, padding=2))
        rate = lr / (len(v) * v.shape[2] * v.shape[3])  # per image and hidden position, as the crbm's gradient
        weight.add_(conv2d_weight(v, weight.shape, h_data, padding=2)
                    .sub_(conv2d_weight(v_model, weight.shape, h_model, padding=2)), alpha=rate)
        visible_bias.add_((v - v_model).sum((0, 2, 3)), alpha=rate)
        hidden_bias.add_((h_data - h_model).sum((0, 2, 3)), alpha=rate)


def plain_loop(kind: str, layer, x: torch.Tensor):
    """The hand-written epoch of ``kind``, on parameters copied from ``layer``'s initial state."""
    p = {name: param.detach().clone() for name, param in layer.named_parameters() if name != "chain"}
    if kind == "crbm":
        return lambda: crbm_epoch(p, x, type(layer).default_lr)
    for param in p.values():
        param.requires_grad_()
    optimizer = torch.optim.Adam(p.values(), lr=type(layer).default_lr)
    loss = ae_loss if kind == "ae" else cae_loss
    return lambda: autograd_epoch(loss, p, optimizer, x)


def medians(kind: str, x: torch.Tensor, rounds: int) -> dict:
    torch.manual_seed(0)
    layer = LayerSpec.parse(SPECS[kind]).build(x.shape[1:], "unit")
    optimizer = layer_optimizer(layer, type(layer).default_lr)
    runs = {"plain loop": plain_loop(kind, layer, x), "trainer": lambda: run_epoch(layer, optimizer, x, BATCH)}
    for run in runs.values():  # warm-up: first calls allocate, and torch.optim imports what it needs
        run()
    return medians_in_turn(runs, rounds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kinds", nargs="+", default=list(SPECS), choices=list(SPECS))
    parser.add_argument("--rounds", type=int, default=6, help="epochs of each, taken in turn")
    parser.add_argument("--rows", type=int, help="images per epoch (default: about two seconds' worth per kind)")
    args = parser.parse_args()
    keep_freed_memory()  # as the commands set their process (pretrain.core.memory): loops and trainer alike
    images = torch.from_numpy(load_data(FASHION_MNIST).x_train.astype("float32") / 255.0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {BATCH}, median of "
          f"{args.rounds} epochs each, taken in turn")
    print("| layer | images | plain loop s | trainer s | loop / trainer |")
    print("|---|---|---|---|---|")
    for kind in args.kinds:
        rows = args.rows or ROWS[kind]
        x = images[:rows].reshape(rows, -1) if kind == "ae" else images[:rows, None]
        m = medians(kind, x, args.rounds)
        print(f"| `{SPECS[kind]}` | {rows:,} | {m['plain loop']:.3f} | {m['trainer']:.3f} | "
              f"{m['plain loop'] / m['trainer']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
