"""The ``pretrain`` command: click wiring only.

Heavy imports (torch, torchvision) happen inside the command so ``--help`` is instant.
"""
import time

STARTED = time.perf_counter()  # for --profile: imports and argument parsing count from here

import click  # noqa: E402

from .commandline import (CONTEXT, Command, Parsed, common_options, data_help, one_line,  # noqa: E402
                          report_errors, setting_option, usage_error)
from .settings import PretrainSettings  # noqa: E402


def list_layers_callback(ctx, _param, value):
    if value and not ctx.resilient_parsing:
        from .layers import describe_layers
        click.echo(describe_layers())
        ctx.exit()


def parse_layer(text: str):
    from .layers import LayerSpec
    return LayerSpec.parse(text)


def check_layers_callback(_ctx, _param, specs):
    """The whole ``-l`` list checked as it is parsed (:mod:`pretrain.training.layer_list`): a usage mistake."""
    from .core.errors import LayerwiseError
    from .training.layer_list import check_layer_list
    try:
        check_layer_list(specs)
    except LayerwiseError as error:
        raise click.BadParameter(one_line(str(error))) from None
    return specs


@click.command("pretrain", cls=Command, context_settings=CONTEXT, epilog=data_help())
@click.argument("data", required=False)
@click.option("-l", "--layer", "layers", multiple=True, type=Parsed(parse_layer, "KIND:UNITS[,key=value...]"),
              callback=check_layers_callback,
              help="A layer, bottom first; repeat for a stack, e.g. -l rbm:500 -l rbm:500 (see --list-layers).")
@click.option("-o", "--out", type=click.Path(file_okay=False),
              help="Output folder for stack.pt, stack.json, plots (without it nothing is saved).")
@setting_option(PretrainSettings, "epochs")
@setting_option(PretrainSettings, "batch_size")
@setting_option(PretrainSettings, "lr")
@setting_option(PretrainSettings, "seed")
@setting_option(PretrainSettings, "val_fraction")
@setting_option(PretrainSettings, "cache_dir", type=click.Path(file_okay=False))
@setting_option(PretrainSettings, "resume")
@setting_option(PretrainSettings, "overwrite")
@click.option("--plots/--no-plots", default=True, help="Write PNGs to OUT/plots at the end.")
@click.option("--plots-only", type=click.Path(), metavar="STACK_DIR",
              help="Only draw the plots of an existing stack, then exit.")
@setting_option(PretrainSettings, "ais_every", metavar="N")
@click.option("--score", type=click.Path(), metavar="STACK_DIR",
              help="Only score an existing stack: test log-likelihood of its first RBM by AIS, "
                   "printed and written into its stack.json, then exit.")
@click.option("--ais-runs", default=100, type=click.IntRange(min=2), help="AIS chains of --score.")
@click.option("--ais-betas", type=click.IntRange(min=2), metavar="N",
              help="Inverse temperatures of --score's AIS, spaced densest near 1  "
                   "[default: 14,501: 0-0.5 by 1e-3, 0.5-0.9 by 1e-4, 0.9-1 by 1e-5]")
@click.option("-q", "--quiet", is_flag=True, help="No progress output (bars show only on a terminal anyway).")
@click.option("--profile", is_flag=True, help="Print where the time went (imports, data, epochs, monitors, ...).")
@click.option("--list-layers", is_flag=True, expose_value=False, is_eager=True, callback=list_layers_callback,
              help="Show the layer kinds and their options, then exit.")
@common_options
@report_errors
def main(data, layers, out, epochs, batch_size, lr, seed, val_fraction, cache_dir, resume, overwrite, plots,
         plots_only, ais_every, score, ais_runs, ais_betas, quiet, profile, device, threads, data_dir, split_seed):
    """Pretrain a stack greedily, one layer at a time, on the unlabeled images of DATA.

    \b
    Example:
      pretrain digits -l rbm:256 -l rbm:128 -o runs/digits-dbn
      pretrain idx:data/fashion -l rbm:500 -l ae:250,noise=mask:0.3 -o runs/fm
      pretrain --score runs/digits-dbn --ais-runs 100
      torchrun --standalone --nproc_per_node 2 -m pretrain digits -l rbm:256 -o runs/dp
    """
    from .core.timing import SECONDS, phase, table
    SECONDS["imports and argument parsing"] = time.perf_counter() - STARTED
    from .data.specs import load_data
    from .core.device import CHOICE, resolve_device, set_threads
    from .core.distributed import is_writer, process_group
    from .training.greedy import layer_specs, pretrain_stack
    set_threads(threads)
    if plots_only:
        return draw_saved_plots(plots_only, data_dir)
    if score:
        if data:
            raise usage_error("--score reads the stack's own data from its stack.json: drop DATA")
        return score_saved_stack(score, ais_runs, ais_betas, data_dir)
    if not data:
        raise usage_error("missing DATA: e.g. `pretrain digits -l rbm:256 -o runs/dbn`")
    layers = layer_specs(layers)  # before the data is read
    with phase("data loading"):
        dataset = load_data(data, data_dir=data_dir, split_seed=split_seed)
    with process_group(resolve_device(device)) as rank_device:  # under torchrun; else nothing happens
        if not out and is_writer():
            click.echo("Note: no -o given, so nothing will be saved.", err=True)
        stack = pretrain_stack(dataset, layers, out, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                               device=str(rank_device), val_fraction=val_fraction, cache_dir=cache_dir,
                               resume=resume, overwrite=overwrite, progress=not quiet, ais_every=ais_every)
        written = []
        if out and plots:  # in the group: under torchrun the other ranks run a share of samples.png's chains
            with phase("plots"):
                from .plots import plot_stack, sampled_rows
                if is_writer():
                    written = plot_stack(stack, out, dataset.example_images())
                else:
                    sampled_rows(stack)  # this rank's share of the chains, gathered by rank 0
        if not is_writer():
            return
    click.echo(f"pretrained {stack}")
    if out:
        click.echo(f"saved {out}/stack.pt and {out}/stack.json")
        for path in written:
            click.echo(f"wrote {path}")
    if profile:
        total = time.perf_counter() - STARTED
        click.echo(f"threads: {CHOICE.get('threads')} ({CHOICE.get('why')})", err=True)
        click.echo(f"where the {total:.2f} s went (python -X importtime details the imports):\n{table(total)}",
                   err=True)


def draw_saved_plots(folder: str, data_dir) -> None:
    """``--plots-only``: redraw a saved stack's pictures, with test images of its data when they load."""
    from .data.specs import load_data
    from .core.errors import LayerwiseError
    from .plots import plot_stack
    from .training.stack import load_stack
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


def score_saved_stack(folder: str, runs: int, betas, data_dir) -> None:
    """``--score``: the test log-likelihood of a stack's first RBM, on its data's held-out test split.

    The data and ``split_seed`` are the stack's own (from its record); an
    ``rbm`` is scored on binarised test images (see ``pretrain.likelihood.partition.BINARISATION``).
    A stack of several RBMs also gets the DBN lower bound (:mod:`pretrain.likelihood.dbn_bound`).
    """
    from .data.specs import load_data
    from .core.errors import LayerwiseError
    from .likelihood.scoring import score_layer
    from .training.stack import load_stack, record_in_stack
    stack = load_stack(folder)
    spec = stack.info.get("data")
    if spec in (None, "array"):
        raise LayerwiseError(f"{folder} was pretrained on an in-memory array: score it in Python "
                             "with pretrain.likelihood.scoring.score_layer(layer, x_test, x_train)")
    dataset = load_data(spec, data_dir=data_dir, split_seed=stack.info.get("split_seed") or 0, download=False)
    if dataset.x_test is None:
        raise LayerwiseError(f"{spec} has no test split to score on: use labeled data, or score in Python")
    x_test, x_train = stack.preprocess(dataset.x_test), stack.preprocess(dataset.pretraining_images())
    score = score_layer(stack.layers[0], x_test, x_train, runs, betas)
    path = record_in_stack(folder, "test_log_likelihood", score)
    line = (f"test log-likelihood {score['nats']:.2f} nats per image {bounds(score)} (layer 1 "
            f"{stack.layers[0].kind}:{stack.layers[0].n_hidden}, {score['n_test']} test images of {spec}, inputs "
            f"{score['inputs']}; AIS {runs} runs x {score['ais_betas']} betas, log Z {score['log_z']:.2f}, "
            f"{score['ais_seconds']:.1f} s)")
    if len(stack.layers) > 1 and all(layer.kind == "rbm" for layer in stack.layers):
        from .likelihood.scoring import score_stack_bound
        bound = score_stack_bound(stack.layers, x_test, x_train, runs, betas)
        record_in_stack(folder, "test_log_likelihood_dbn_bound", bound)
        line += f"; as a {len(stack.layers)}-layer DBN at least {bound['nats']:.2f} {bounds(bound)}"
    click.echo(f"{line}; recorded in {path.with_suffix('.json')}")


def bounds(score: dict) -> str:
    """``[low, high]`` of a score, ``unbounded`` above when AIS's lower bound on log Z is -inf."""
    high = "unbounded" if score["high"] is None else f"{score['high']:.2f}"
    return f"[{score['low']:.2f}, {high}]"
