"""The ``pretrain`` command: greedy layer-wise pretraining from the shell.

Heavy imports (torch, torchvision) happen inside the command so ``--help`` is instant.
"""
import functools
import sys

import click

from .errors import LayerwiseError

DATA_HELP = ("digits, mnist, fashion-mnist, kmnist, cifar10, svhn, stl10 (with --data-dir), "
             "idx:DIR, npz:FILE or folder:DIR")


def report_user_errors(command):
    """Turn user mistakes into one ``Error: ...`` line and exit status 1, never a traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except LayerwiseError as error:
            raise click.ClickException(str(error)) from None
        except KeyboardInterrupt:
            click.echo("Interrupted: the last finished epoch is checkpointed; rerun with --resume.", err=True)
            sys.exit(130)
    return wrapper


def list_layers_callback(ctx, _param, value):
    if value and not ctx.resilient_parsing:
        from .layers import describe_layers
        click.echo(describe_layers())
        ctx.exit()


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("data", required=False)
@click.option("-l", "--layer", "layers", multiple=True, metavar="KIND:UNITS[,key=value...]",
              help="A layer, bottom first; repeat for a stack, e.g. -l rbm:500 -l rbm:500.")
@click.option("-o", "--out", type=click.Path(file_okay=False), help="Output folder for stack.pt, stack.json, plots.")
@click.option("--epochs", default=10, help="Epochs per layer (per-layer override: epochs=N in the spec).")
@click.option("--batch-size", default=100)
@click.option("--lr", default=0.0, help="Learning rate (0: each kind's default; per-layer: lr=X in the spec).")
@click.option("--seed", default=0, help="Seed for initialisation, shuffling and sampling.")
@click.option("--device", default="auto", help="auto, cpu or cuda.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where torchvision datasets live.")
@click.option("--split-seed", default=0, help="Seed of the held-out test split (shared with finetune).")
@click.option("--val-fraction", default=0.05, help="Held-out slice of the pretraining data for monitoring.")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Keep the cached codes in memory-mapped files here (data bigger than RAM).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier run in --out.")
@click.option("--plots/--no-plots", default=True, help="Write PNGs to OUT/plots at the end.")
@click.option("--plots-only", type=click.Path(), metavar="STACK_DIR",
              help="Only draw the plots of an existing stack, then exit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option("--list-layers", is_flag=True, expose_value=False, is_eager=True, callback=list_layers_callback,
              help="Show the layer kinds and their options, then exit.")
@report_user_errors
def main(data, layers, out, epochs, batch_size, lr, seed, device, data_dir, split_seed, val_fraction,
         cache_dir, resume, overwrite, plots, plots_only, quiet):
    """Pretrain a stack greedily, one layer at a time, on the unlabeled images of DATA.

    DATA: digits, mnist, fashion-mnist, kmnist, cifar10, svhn, stl10 (with
    --data-dir), idx:DIR, npz:FILE or folder:DIR.

    \b
    Example:
      pretrain digits -l rbm:256 -l rbm:128 -o runs/digits-dbn
      pretrain fashion-mnist --data-dir data -l rbm:500,k=1 -l ae:250,noise=mask:0.3 -o runs/fm
    """
    if plots_only:
        from .stack import load_stack
        stack = load_stack(plots_only)
        from .plots import plot_stack
        for path in plot_stack(stack, plots_only, data_dir=data_dir):
            click.echo(f"wrote {path}")
        return
    if not data:
        raise LayerwiseError("missing DATA: e.g. `pretrain digits -l rbm:256 -o runs/dbn` (DATA: " + DATA_HELP + ")")
    if not layers:
        raise LayerwiseError("no layers given: add at least one, e.g. -l rbm:500 (see --list-layers)")
    from .greedy import pretrain_stack
    stack = pretrain_stack(data, layers, out, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                           device=device, val_fraction=val_fraction, cache_dir=cache_dir, resume=resume,
                           overwrite=overwrite, data_dir=data_dir, split_seed=split_seed, progress=not quiet)
    click.echo(f"pretrained {stack}")
    if out:
        click.echo(f"saved {out}/stack.pt and {out}/stack.json")
        if plots:
            from .plots import plot_stack
            for path in plot_stack(stack, out, data_dir=data_dir):
                click.echo(f"wrote {path}")
