"""The ``pretrain`` command: click wiring only.

Heavy imports (torch, torchvision) happen inside the command so ``--help`` is instant.
"""
import click

from .commandline import CONTEXT, Finite, Parsed, common_options, data_help, report_errors, usage_error


def list_layers_callback(ctx, _param, value):
    if value and not ctx.resilient_parsing:
        from .layers import describe_layers
        click.echo(describe_layers())
        ctx.exit()


def parse_layer(text: str):
    from .layers import LayerSpec
    return LayerSpec.parse(text)


@click.command("pretrain", context_settings=CONTEXT, epilog=data_help())
@click.argument("data", required=False)
@click.option("-l", "--layer", "layers", multiple=True, type=Parsed(parse_layer, "KIND:UNITS[,key=value...]"),
              help="A layer, bottom first; repeat for a stack, e.g. -l rbm:500 -l rbm:500 (see --list-layers).")
@click.option("-o", "--out", type=click.Path(file_okay=False),
              help="Output folder for stack.pt, stack.json, plots (without it nothing is saved).")
@click.option("--epochs", default=10, type=click.IntRange(min=1),
              help="Epochs per layer (per-layer override: epochs=N in the spec).")
@click.option("--batch-size", default=100, type=click.IntRange(min=1),
              help="The global batch: under torchrun each of the N processes trains on 1/N of it.")
@click.option("--lr", default=0.0, type=Finite(min=0),
              help="Learning rate (0: each kind's default; per-layer: lr=X in the spec).")
@click.option("--seed", default=0, type=click.IntRange(min=0), help="Seed for initialisation, shuffling and sampling.")
@click.option("--val-fraction", default=0.05, type=Finite(0, 1, max_open=True),
              help="Held-out slice of the pretraining data for monitoring.")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Keep the cached codes in memory-mapped files here (data bigger than RAM); private to the run.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier run in --out.")
@click.option("--plots/--no-plots", default=True, help="Write PNGs to OUT/plots at the end.")
@click.option("--plots-only", type=click.Path(), metavar="STACK_DIR",
              help="Only draw the plots of an existing stack, then exit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output (bars show only on a terminal anyway).")
@click.option("--list-layers", is_flag=True, expose_value=False, is_eager=True, callback=list_layers_callback,
              help="Show the layer kinds and their options, then exit.")
@common_options
@report_errors
def main(data, layers, out, epochs, batch_size, lr, seed, val_fraction, cache_dir, resume, overwrite, plots,
         plots_only, quiet, device, threads, data_dir, split_seed):
    """Pretrain a stack greedily, one layer at a time, on the unlabeled images of DATA.

    \b
    Example:
      pretrain digits -l rbm:256 -l rbm:128 -o runs/digits-dbn
      pretrain idx:data/fashion -l rbm:500 -l ae:250,noise=mask:0.3 -o runs/fm
      torchrun --standalone --nproc_per_node 2 -m pretrain digits -l rbm:256 -o runs/dp
    """
    from .device import set_threads
    set_threads(threads)
    if plots_only:
        return draw_saved_plots(plots_only, data_dir)
    if not data:
        raise usage_error("missing DATA: e.g. `pretrain digits -l rbm:256 -o runs/dbn`")
    if not layers:
        raise usage_error("no layers given: add at least one, e.g. -l rbm:500 (see --list-layers)")
    from .data import load_data
    from .device import resolve_device
    from .distributed import is_writer, process_group
    from .greedy import pretrain_stack
    dataset = load_data(data, data_dir=data_dir, split_seed=split_seed)
    with process_group(resolve_device(device)) as rank_device:  # under torchrun; else nothing happens
        if not out and is_writer():
            click.echo("Note: no -o given, so nothing will be saved.", err=True)
        stack = pretrain_stack(dataset, layers, out, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                               device=str(rank_device), val_fraction=val_fraction, cache_dir=cache_dir,
                               resume=resume, overwrite=overwrite, progress=not quiet)
        if not is_writer():
            return
    click.echo(f"pretrained {stack}")
    if out:
        click.echo(f"saved {out}/stack.pt and {out}/stack.json")
        if plots:
            from .plots import plot_stack
            for path in plot_stack(stack, out, dataset.example_images()):
                click.echo(f"wrote {path}")


def draw_saved_plots(folder: str, data_dir) -> None:
    """``--plots-only``: redraw a saved stack's pictures, with test images of its data when they load."""
    from .data import load_data
    from .errors import LayerwiseError
    from .plots import plot_stack
    from .stack import load_stack
    stack = load_stack(folder)
    examples = None
    spec = stack.info.get("data")
    if spec not in (None, "array"):
        try:
            examples = load_data(spec, data_dir=data_dir, split_seed=stack.info.get("split_seed") or 0,
                                 download=False).example_images()
        except LayerwiseError as error:
            click.echo(f"Warning: no reconstructions.png, the test images of {spec} are unavailable: {error}", err=True)
    for path in plot_stack(stack, folder, examples):
        click.echo(f"wrote {path}")
