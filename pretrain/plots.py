"""Pictures of a pretrained stack, written to ``OUT/plots/`` as PNG files.

* ``filters.png``: the first layer's weights drawn as images (image data
  only), the input pattern each hidden unit responds to;
* ``reconstructions.png``: test images beside their reconstructions through
  the first layer, the first two, ... all layers: codes computed upwards with
  each layer's ``forward``, then brought back down with each layer's
  ``decode`` (``E[v|h]`` for RBMs, the decoder for autoencoders);
* ``samples.png``: visible means of the first layer's block Gibbs chains
  (Hinton 2010, s. 3) after 10, 100 and 1000 steps, when that layer is an RBM;
* ``training_curves.png``: per layer, the reconstruction error on training
  rows and on the held-out slice after every epoch, and for RBMs the free-energy
  gap ``mean F(held-out) - mean F(train)``, which grows when an RBM overfits
  (Hinton 2010, s. 6); with ``ais_every`` set, below that the mean
  log-likelihood (nats) of training and held-out rows from a quick AIS.

Figures are built with ``matplotlib.figure.Figure`` and rendered by Agg,
never through pyplot, so drawing them changes no global matplotlib state; the
random draws (Gibbs chains) are seeded per row, so the same stack gives the same pictures in one
process or several, and the caller's torch random state is left as it was.
"""
import math
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from .core.distributed import gather_objects, rank, world_size
from .layers.energy import EnergyLayer
from .training.stack import Stack

#: at most this many first-layer filters are drawn (10 x 10).
MAX_FILTERS = 100
#: Gibbs chains shown in samples.png.
N_EXAMPLES = 10
#: Gibbs steps after which samples.png shows the chains.
GIBBS_STEPS = (10, 100, 1000)
DPI = 110
SEED = 0


def plot_stack(stack: Stack, out_dir, examples: Optional[np.ndarray] = None) -> List[Path]:
    """Draw the pictures that apply to ``stack`` into ``out_dir/plots/``; return the files written.

    ``examples`` are raw test images for ``reconstructions.png`` (e.g.
    :meth:`pretrain.data.specs.Dataset.example_images`); without them that picture is left out.
    """
    folder = Path(out_dir) / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    figures = {"filters.png": filters_figure(stack),
               "reconstructions.png": reconstructions_figure(stack, examples),
               "samples.png": samples_figure(stack),  # under torchrun: chains shared with the other ranks
               "training_curves.png": training_curves_figure(stack)}
    written = []
    for name, figure in figures.items():
        if figure is not None:
            figure.savefig(folder / name, dpi=DPI)
            written.append(folder / name)
    return written


# The pictures ------------------------------------------------------------------
def filters_figure(stack: Stack):
    """The first layer's weights into each hidden unit as images, each scaled to its largest |w|."""
    shape = stack.preprocessing.image_shape
    if shape is None:
        return None
    layer = stack.layers[0]
    # the weights as a plain Linear or Conv2d sees them (a grbm's divided by its std), a patch layer's dictionary
    weights = layer.picture_weights()[:MAX_FILTERS]
    if weights.ndim == 4:  # [filters, C, k, k]: each filter is a k x k image
        weights = weights.permute(0, 2, 3, 1)
        shape = weights.shape[1:]
    weights = weights.reshape(len(weights), -1)
    scaled = weights / weights.abs().amax(1, keepdim=True).clamp_min(1e-12)
    tiles = ((scaled + 1) / 2).reshape(-1, *shape).numpy()
    image = mosaic(tiles, columns=math.ceil(math.sqrt(len(tiles))))
    width = 7.2
    figure = new_figure(width, width * image.shape[0] / image.shape[1] + 0.7)
    axes = figure.add_subplot()
    show_image(axes, image)
    units = f"{layer.filters} filters" if layer.convolutional else f"{layer.n_hidden} hidden units"
    axes.set_title(f"Layer 1 ({layer_name(stack, 0)}) filters: {len(tiles)} of {units}\n"
                   "weights into each unit, each scaled to its own max |w| (grey = 0, white > 0, black < 0)",
                   fontsize=11)
    return figure


def reconstructions_figure(stack: Stack, examples: Optional[np.ndarray]):
    """Test images (top row) and their reconstructions through 1, 2, ... all layers (rows below)."""
    if stack.preprocessing.image_shape is None or examples is None or not len(examples):
        return None
    if not all(layer.decodes_codes for layer in stack.layers):  # pooled patch features have no way back down
        return None
    x = stack.preprocess(examples)
    rows = [x] + [reconstruct_through(stack.layers[:depth], x) for depth in range(1, len(stack.layers) + 1)]
    labels = ["test input"] + [f"through {depth} layer{'s' * (depth > 1)}\n"
                               f"(MSE {float((row - x).pow(2).mean()):.4f})"
                               for depth, row in enumerate(rows[1:], start=1)]
    return strips_figure(stack, rows, labels, f"Reconstructions of {stack.info.get('data', 'the')} test images\n"
                         "up through each layer's code, back down through each layer's mean reconstruction")


def samples_figure(stack: Stack):
    """The first layer's Gibbs chains, started from random hidden states, after each of GIBBS_STEPS."""
    rows = sampled_rows(stack)
    if rows is None:
        return None
    return strips_figure(stack, rows, [f"{steps} Gibbs steps" for steps in GIBBS_STEPS],
                         f"Samples of the layer 1 RBM ({layer_name(stack, 0)}): visible means of "
                         f"{N_EXAMPLES} chains per row, each from random hidden states")


def sampled_rows(stack: Stack) -> Optional[List[torch.Tensor]]:
    """samples.png's rows: ``N_EXAMPLES`` chains of the first RBM after each of GIBBS_STEPS, each row seeded
    by its index (so a row is the same whoever runs it); None where the picture does not apply.

    Under torchrun every process calls this: each runs its share of the chains and all of them gather
    the rows. Rank 0 draws the other pictures meanwhile, so the longest chain goes to the last rank.
    """
    layer = stack.layers[0]
    if stack.preprocessing.image_shape is None or not isinstance(layer, EnergyLayer):
        return None
    mine = [i for i in range(len(GIBBS_STEPS)) if (len(GIBBS_STEPS) - i) % world_size() == rank()]
    rows = {}
    for share in gather_objects({i: chain_row(layer, i) for i in mine}):
        rows.update(share)
    return [rows[i] for i in range(len(GIBBS_STEPS))]


def chain_row(layer: EnergyLayer, index: int) -> torch.Tensor:
    """Row ``index`` of samples.png, from its own seed: visible means after ``GIBBS_STEPS[index]`` steps."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED + index)
        return layer.sample(N_EXAMPLES, GIBBS_STEPS[index]).cpu()


def training_curves_figure(stack: Stack):
    """Per layer (columns): reconstruction error per epoch; below it the free-energy gap and AIS monitor of RBMs."""
    history = stack.info.get("history") or []
    if not history:
        return None
    has_gap = any("free_energy_gap" in record for record in history)
    has_ais = any("log_likelihood_train" in record for record in history)
    n_rows, n_layers = 1 + has_gap + has_ais, len(stack.layers)
    figure = new_figure(4.2 * n_layers + 0.6, 3.4 * n_rows + 0.6)
    for index in range(n_layers):
        records = [record for record in history if record["layer"] == index]
        epochs = [record["epoch"] for record in records]
        axes = figure.add_subplot(n_rows, n_layers, index + 1)
        axes.plot(epochs, [r["recon_train"] for r in records], "o-", label="training rows")
        if "recon_val" in records[0]:  # absent when trained without a held-out slice
            axes.plot(epochs, [r["recon_val"] for r in records], "s--", label="held-out")
        label_axes(axes, f"layer {index + 1}: {layer_name(stack, index)}", "reconstruction MSE per unit", epochs[-1])
        axes.legend(fontsize=9)
        if has_gap and "free_energy_gap" in records[0]:
            gap_axes = figure.add_subplot(n_rows, n_layers, n_layers + index + 1)
            gap_axes.plot(epochs, [r["free_energy_gap"] for r in records], "o-", color="tab:red")
            gap_axes.axhline(0, color="grey", linewidth=0.8)
            label_axes(gap_axes, "free-energy gap (rises with overfitting)", "F(held-out) - F(train)", epochs[-1])
        if has_ais:
            draw_likelihood(figure.add_subplot(n_rows, n_layers, (n_rows - 1) * n_layers + index + 1), records,
                            epochs[-1])
    figure.suptitle("Training curves, one column per layer", fontsize=12)
    return figure


def draw_likelihood(axes, records, last_epoch: int) -> None:
    """The AIS monitor's mean log-likelihood of training and held-out rows, at the epochs that have it."""
    for key, style, label in (("log_likelihood_train", "o-", "training rows"),
                              ("log_likelihood_val", "s--", "held-out")):
        points = [(r["epoch"], r[key]) for r in records if key in r]
        if points:
            axes.plot(*zip(*points), style, label=label)
    label_axes(axes, "log-likelihood, quick AIS (binarised)", "mean log p(v), nats", last_epoch)
    if axes.lines:
        axes.legend(fontsize=9)


# Helpers -----------------------------------------------------------------------
def strips_figure(stack: Stack, rows: List[torch.Tensor], labels: List[str], title: str):
    """One labelled strip of images per row of preprocessed vectors, all on one brightness scale."""
    figure = new_figure(1.0 * len(rows[0]) + 2.0, 1.25 * len(rows) + 0.8)
    for index, (row, label) in enumerate(zip(displayable(stack, rows), labels)):
        axes = figure.add_subplot(len(rows), 1, index + 1)
        show_image(axes, mosaic(row, columns=len(row)))
        axes.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
    figure.suptitle(title, fontsize=11)
    return figure


@torch.no_grad()
def reconstruct_through(layers, x: torch.Tensor) -> torch.Tensor:
    """Up through ``layers`` with their deterministic codes, then back down with each one's ``decode``."""
    codes = x
    for layer in layers:  # feature maps are flattened where a dense layer starts, as in training
        codes = layer(codes if layer.convolutional else codes.flatten(1))
    for layer in reversed(layers):
        codes = layer.decode(codes.reshape(len(codes), *layer.output_shape))
    return codes


def displayable(stack: Stack, rows: List[torch.Tensor]) -> List[np.ndarray]:
    """Rows of preprocessed vectors as images [n, H, W, C] in [0, 1], all on one brightness scale.

    Unit-scaled inputs are shown as they are; standardised ones are mapped
    back to the raw scale and stretched to the range of all the rows together.
    """
    shape, prep = stack.preprocessing.image_shape, stack.preprocessing
    images = [row.permute(0, 2, 3, 1) if row.ndim == 4 else row.reshape(-1, *shape) for row in rows]
    if prep.mode == "unit":
        return [image.clamp(0, 1).numpy() for image in images]
    # per-channel statistics (image layout) broadcast over the last axis; per-feature ones take the image's shape
    mean, std = (prep.mean, prep.std) if prep.layout == "image" else (prep.mean.reshape(shape), prep.std.reshape(shape))
    raw = [image * std + mean for image in images]
    lo, hi = min(float(r.min()) for r in raw), max(float(r.max()) for r in raw)
    return [((r - lo) / max(hi - lo, 1e-12)).numpy() for r in raw]


def mosaic(images: np.ndarray, columns: int, pad: int = 1) -> np.ndarray:
    """Images [n, H, W, C] tiled ``columns`` to a row on a white grid, as one [rows*(H+pad)+pad, ..., C] image."""
    n, height, width, channels = images.shape
    n_rows = -(-n // columns)
    canvas = np.ones((n_rows * (height + pad) + pad, columns * (width + pad) + pad, channels))
    for index, image in enumerate(images):
        top, left = pad + (index // columns) * (height + pad), pad + (index % columns) * (width + pad)
        canvas[top:top + height, left:left + width] = image
    return canvas


def show_image(axes, image: np.ndarray) -> None:
    """Grey-scale or colour image with square pixels and no ticks."""
    if image.shape[-1] == 1:
        axes.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        axes.imshow(image.clip(0, 1), interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_frame_on(False)


def label_axes(axes, title: str, ylabel: str, last_epoch: int) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.set_title(title, fontsize=11)
    axes.set_xlim(0.5, last_epoch + 0.5)
    axes.set_xlabel("epoch", fontsize=10)
    axes.set_ylabel(ylabel, fontsize=10)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    axes.grid(alpha=0.3)


def layer_name(stack: Stack, index: int) -> str:
    """The layer's spec as given (``rbm:200,k=1``), else ``kind:units``."""
    specs = stack.info.get("layer_specs") or []
    layer = stack.layers[index]
    return specs[index] if index < len(specs) else f"{layer.kind}:{layer.n_hidden}"


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")
