"""The ``finetune`` command: does pretraining help with my few labels, and how much?

Heavy imports (torch, torchvision, matplotlib) happen inside the command so ``--help`` is instant.
"""
import warnings

import click

from pretrain.cli import DATA_HELP, report_user_errors
from pretrain.errors import LayerwiseError


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one ``Warning: ...`` line on stderr, without the source line Python adds."""
    click.echo(f"Warning: {message}", err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("data", required=False)
@click.option("--from", "sources", multiple=True, metavar="SOURCE",
              help="STACK_DIR (pretrained), random:STACK_DIR (its random-init control) or torchvision:NAME; "
                   "repeat to compare.")
@click.option("--schedule", "schedules", multiple=True, default=["two-stage"], metavar="NAME",
              help="linear (frozen body), two-stage (the head, then the body at discriminative rates), "
                   "full or gradual; repeat to compare.")
@click.option("--labels-per-class", metavar="N,N,...|all",
              help="Label budgets per class, e.g. 1,10,100,all  [default: 1,10,100 unless --labels]")
@click.option("--labels", metavar="N,N,...", help="Label budgets in total, stratified over the classes.")
@click.option("--seeds", default=1, help="Repeats of every cell, each with its own label sample and initialisation.")
@click.option("--seed", default=0, help="The first seed (seeds are SEED, SEED+1, ...).")
@click.option("--head", default="linear", metavar="linear|mlp:H[,dropout=P]", help="The classifier head.")
@click.option("--drop-top", default=0, help="Remove the top K layer groups of the body before the head goes on.")
@click.option("--unfreeze", type=int, help="Top groups unfrozen by two-stage and gradual  [default: all]")
@click.option("--body-lr-scale", default=0.1, help="Top body group's learning rate as a fraction of the head's.")
@click.option("--lr-decay", default=1.0, help="Learning-rate factor per group further down the body (1: all at the same rate).")
@click.option("--lr", default=1e-3, help="The head's learning rate (Adam).")
@click.option("--epochs", default=100, help="Most epochs per stage (early stopping ends sooner).")
@click.option("--batch-size", default=64)
@click.option("--device", default="auto", help="auto, cpu or cuda.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where torchvision datasets live.")
@click.option("--split-seed", default=0, help="Seed of the held-out test split (the one pretrain used).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Write results.json, results.csv, results.md and learning_curves.png here.")
@click.option("--save", "save_dir", type=click.Path(file_okay=False),
              help="Keep the fine-tuned model(s) here (one subfolder each when several).")
@click.option("--input-size", type=int, help="Resize images to N x N for torchvision backbones.")
@click.option("--adapt-first-conv", is_flag=True,
              help="Torchvision backbones: sum the first convolution over RGB for grayscale input.")
@click.option("--list-backbones", metavar="NAME", help="Show the layer nodes of a torchvision backbone, then exit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@report_user_errors
def main(data, sources, schedules, labels_per_class, labels, seeds, seed, head, drop_top, unfreeze,
         body_lr_scale, lr_decay, lr, epochs, batch_size, device, data_dir, split_seed, report_dir, save_dir,
         input_size, adapt_first_conv, list_backbones, quiet):
    """Fine-tune bodies on few labels of DATA and compare them.

    DATA: digits, mnist, fashion-mnist, kmnist, cifar10, svhn, stl10 (with
    --data-dir), idx:DIR, npz:FILE or folder:DIR (the same specs as pretrain).

    \b
    Example:
      pretrain digits -l rbm:256 -l rbm:128 -o runs/dbn
      finetune digits --from runs/dbn --from random:runs/dbn --labels-per-class 1,10,100 --seeds 3 --report runs/cmp
    """
    if list_backbones:
        from .backbones import backbone_nodes
        for node in backbone_nodes(list_backbones):
            click.echo(node)
        return
    if not data:
        raise LayerwiseError(f"missing DATA: e.g. `finetune digits --from runs/dbn --from random:runs/dbn` "
                             f"(DATA: {DATA_HELP})")
    if not sources:
        raise LayerwiseError("no --from given: e.g. --from runs/dbn --from random:runs/dbn")
    if seeds < 1:
        raise LayerwiseError(f"--seeds {seeds}: use at least 1")
    from pretrain.data import load_data
    from .experiment import compare
    from .report import format_table, write_report
    dataset = load_data(data, data_dir=data_dir, split_seed=split_seed)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        rows = compare(
            dataset, list(sources), list(dict.fromkeys(schedules)), labels_per_class, list(range(seed, seed + seeds)),
            labels=labels, save=save_dir, head=head, drop_top=drop_top, unfreeze=unfreeze,
            body_lr_scale=body_lr_scale, lr_decay=lr_decay, lr=lr, epochs=epochs, batch_size=batch_size,
            device=device, split_seed=split_seed, input_size=input_size, adapt_first_conv=adapt_first_conv,
            progress=not quiet)
    n_classes = dataset.n_classes
    click.echo(format_table(rows, n_classes))
    if report_dir:
        for path in write_report(rows, report_dir, n_classes):
            click.echo(f"wrote {path}")
    if save_dir:
        click.echo(f"saved the fine-tuned model{'s' if len(rows) > 1 else ''} under {save_dir}")
