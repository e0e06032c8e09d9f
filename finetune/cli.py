"""The ``finetune`` command: click wiring only.

Heavy imports (torch, torchvision, matplotlib) happen inside the command so ``--help`` is instant.
"""
import warnings
from contextlib import contextmanager

import click

from pretrain.commandline import (CONTEXT, Command, Parsed, command_line, common_options, data_help, report_errors,
                                  setting_option, usage_error)
from pretrain.core.errors import LayerwiseError

from .settings import GRID, FinetuneSettings, StudyGrid


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one ``Warning: ...`` line on stderr, without the source line Python adds."""
    click.echo(f"Warning: {message}", err=True)


def _source(text: str):
    from .networks.sources import parse_source
    return parse_source(text)


def _checked(parse):
    """A parser used only to check a value at parse time; the command keeps the text."""
    def check(text: str) -> str:
        parse(text)
        return text
    return check


def _budgets(text):
    from .study.budget import parse_budgets
    return parse_budgets(text, None)


def _totals(text):
    from .study.budget import parse_budgets
    return parse_budgets(None, text)


def _head(text):
    from .networks.classifier import parse_head
    return parse_head(text)


@click.command("finetune", cls=Command, context_settings=CONTEXT, epilog=data_help())
@click.argument("data", required=False)
@click.option("--from", "source", multiple=True, type=Parsed(_source, "SOURCE"),
              help="STACK_DIR (pretrained), random:STACK_DIR (its random-init control), torchvision:NAME or pixels "
                   "(logistic regression on the inputs); repeat to compare.")
@setting_option(StudyGrid, "schedule", "--schedule", "schedules", multiple=True, default=[GRID.schedule])
@setting_option(StudyGrid, "labels_per_class", type=Parsed(_checked(_budgets), "N,N,...|all"))
@setting_option(StudyGrid, "labels", type=Parsed(_checked(_totals), "N,N,..."))
@setting_option(StudyGrid, "seeds")
@setting_option(StudyGrid, "seed")
@setting_option(FinetuneSettings, "head", type=Parsed(_checked(_head), "linear|mlp:H[,dropout=P]"))
@setting_option(FinetuneSettings, "drop_top")
@setting_option(FinetuneSettings, "unfreeze")
@setting_option(FinetuneSettings, "body_lr_scale")
@setting_option(FinetuneSettings, "lr_decay")
@setting_option(FinetuneSettings, "lr")
@setting_option(FinetuneSettings, "epochs")
@setting_option(FinetuneSettings, "batch_size")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Write results.json, results.csv, results.md and learning_curves.png here.")
@click.option("--save", "save_dir", type=click.Path(file_okay=False),
              help="Keep the fine-tuned model(s) here (one subfolder each when several).")
@click.option("--overwrite", is_flag=True, help="Replace the results an earlier run left in --save or --report.")
@setting_option(FinetuneSettings, "input_size")
@setting_option(FinetuneSettings, "adapt_first_conv")
@click.option("--list-backbones", metavar="NAME", help="Show the layer nodes of a torchvision backbone, then exit.")
@click.option("--predict", "classifier_dir", type=click.Path(), metavar="CLASSIFIER_DIR",
              help="Label DATA with a classifier saved by --save (its test split, or all of it when it has none) "
                   "and write a CSV of predictions and probabilities.")
@click.option("--predictions", type=click.Path(dir_okay=False), default="predictions.csv",
              help="Where --predict writes its CSV.")
@setting_option(FinetuneSettings, "semi")
@setting_option(FinetuneSettings, "semi_weight")
@setting_option(FinetuneSettings, "augment")
@setting_option(FinetuneSettings, "jobs")
@click.option("--advise", is_flag=True,
              help="Measure every source (with its control and pixels) at every cut on one label sample "
                   "(--labels-per-class K) and recommend a source, cut and schedule; --report writes advice.json.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output (bars show only on a terminal anyway).")
@common_options
@report_errors
def main(data, source, list_backbones, classifier_dir, predictions, advise, jobs, threads, quiet, data_dir,
         split_seed, report_dir, save_dir, overwrite, **options):
    """Fine-tune bodies on few labels of DATA and compare them.

    \b
    Example:
      pretrain digits -l rbm:256 -l rbm:128 -o runs/dbn
      finetune digits --from runs/dbn --from random:runs/dbn --from pixels \\
          --labels-per-class 1,10,100 --seeds 3 --report runs/cmp
      finetune digits --from runs/dbn --labels-per-class 10 --save runs/clf
      finetune digits --from runs/dbn --labels-per-class 10 --advise --report runs/advice
      finetune digits --predict runs/clf --predictions runs/clf/predictions.csv
    """
    from pretrain.core.device import apply_threads, choose_command_threads
    jobs = jobs if source and not (classifier_dir or advise) else 1  # only a comparison has cells to share
    chosen = choose_command_threads(threads, jobs)  # this process is one of the jobs
    if list_backbones:
        apply_threads(chosen)
        return _list_backbones(list_backbones)
    if not data:
        raise usage_error("missing DATA: e.g. `finetune digits --from runs/dbn --from random:runs/dbn`")
    _refuse_what_a_mode_ignores(classifier_dir, advise, source, options["semi"], options["augment"])
    from .study.workers import worker_processes
    with worker_processes(jobs, threads):  # started first, torch not yet imported: their imports overlap ours
        apply_threads(chosen)
        from pretrain.data.specs import load_data
        from .study.checks import REPORTED, SAVED, check_output_folder
        check_output_folder(report_dir, REPORTED, "report_dir", overwrite)  # before anything trains
        check_output_folder(save_dir, SAVED, "save_dir", overwrite)  # save= too, named as the library names it
        dataset = load_data(data, data_dir=data_dir, split_seed=split_seed)
        if classifier_dir:
            return _predict(classifier_dir, dataset, predictions)
        if not source:
            raise usage_error("no --from given: e.g. --from runs/dbn --from random:runs/dbn")
        if advise:
            return _advise(dataset, source, options["labels_per_class"], options["labels"], options["seed"],
                           report_dir, device=options["device"], split_seed=split_seed, data_dir=data_dir,
                           input_size=options["input_size"], adapt_first_conv=options["adapt_first_conv"],
                           progress=not quiet)
        _compare(dataset, source, report_dir, save_dir, jobs=jobs, threads=threads, quiet=quiet, overwrite=overwrite,
                 split_seed=split_seed, **options)


def _list_backbones(name: str) -> None:
    """``--list-backbones``: the layer nodes of a torchvision backbone, where ``@NODE`` may cut it."""
    from .networks.backbones import backbone_nodes
    for node in backbone_nodes(name):
        click.echo(node)


def _predict(classifier_dir: str, dataset, predictions: str) -> None:
    """``--predict``: a saved classifier labels the data; the CSV written to ``predictions``."""
    from .predict import write_predictions
    click.echo(f"wrote {write_predictions(classifier_dir, dataset, predictions)}")


def _compare(dataset, sources, report_dir, save_dir, schedules, labels_per_class, seeds, seed, semi, epochs, device,
             quiet, **options):
    """The comparison (the default mode): every source x schedule x budget x seed, the table printed, the report
    and the models written where asked; ``options``: the rest of :func:`finetune.study.experiment.compare`'s keywords."""
    from pretrain.core.device import resolve_device
    from pretrain.core.distributed import is_writer, process_group

    from .study.cells import CellFailed
    from .study.experiment import compare
    from .study.report import format_table, write_report
    with warnings.catch_warnings(), process_group(resolve_device(device)) as rank_device, \
            _keeping_what_finished(CellFailed, report_dir, save_dir):  # torchrun: cells spread
        warnings.showwarning = _show_warning
        rows = compare(dataset, list(sources), list(dict.fromkeys(schedules)), labels_per_class,
                       list(range(seed, seed + seeds)), save=save_dir, semi=semi, epochs=epochs,
                       device=str(rank_device), progress=not quiet and is_writer(), **options)
        if not is_writer():
            return
    if semi != "none" and _given("epochs"):
        _say_semi_sets_the_length(epochs)
    click.echo(format_table(rows))
    if report_dir:
        rows.config["command"] = command_line(click.get_current_context())
        for path in write_report(rows, report_dir):
            click.echo(f"wrote {path}")
    if save_dir:
        click.echo(f"saved the fine-tuned model{'s' if len(rows) > 1 else ''} under {save_dir}")


@contextmanager
def _keeping_what_finished(failed, report_dir, save_dir):
    """A comparison one of whose cells failed (``failed``: its error, carrying the finished rows): the rows that
    finished reported under ``--report``, and the one error line saying where they and their models are."""
    try:
        yield
    except failed as failure:
        if not failure.rows:
            raise
        from .study.report import write_report
        where = [f"saved under --save {save_dir}"] if save_dir else []
        if report_dir:
            failure.rows.config["command"] = command_line(click.get_current_context())
            write_report(failure.rows, report_dir)
            where.append(f"reported in --report {report_dir}")
        kept = f"are {' and '.join(where)}" if where else "were not kept: pass --save or --report to keep them"
        raise LayerwiseError(f"{failure}; the {len(failure.rows)} model(s) that finished {kept}") from None


def _refuse_what_a_mode_ignores(classifier_dir, advise, source, semi, augment) -> None:
    """Options that ``--predict`` (it trains nothing) or ``--advise`` (it measures plain fine-tuning) would drop
    are usage mistakes, not silently ignored."""
    if classifier_dir and (source or semi != "none"):
        raise usage_error(f"--predict labels DATA with the classifier saved in {classifier_dir} and trains nothing: "
                          f"drop {'--from' if source else '--semi'}")
    if advise and (semi != "none" or augment != "none"):
        raise usage_error(f"--advise measures fine-tuning without unlabeled terms or augmentation: drop "
                          f"{'--semi' if semi != 'none' else '--augment'}")


def _given(name: str) -> bool:
    """Whether the user typed option ``name`` (or set it in the environment), rather than left its default."""
    from click.core import ParameterSource
    return click.get_current_context().get_parameter_source(name) not in (ParameterSource.DEFAULT, None)


def _say_semi_sets_the_length(epochs: int) -> None:
    """``--semi`` stages run for the ramp and the fewest steps after it (:mod:`finetune.training.semi`), not for
    ``--epochs``: one line saying so to whoever asked for a number of epochs, beside the rows that record it."""
    from .training.semi import RAMP
    from .training.train import TrainSettings
    steps = RAMP[1] + TrainSettings.min_steps
    click.echo(f"Warning: under --semi every stage runs at least {steps} optimizer steps, in whole epochs (one that "
               f"trains the body that long and no longer), whatever --epochs {epochs} says", err=True)


def _advise(dataset, sources, labels_per_class, labels, seed, report_dir, **options):
    """``--advise``: one budget measured, the evidence table printed, advice.json written under ``--report``."""
    if labels or not labels_per_class or "," in labels_per_class:
        raise usage_error("--advise measures one budget: give --labels-per-class K with a single K (e.g. 10), "
                          "without --labels")
    from .study.advisor import advise, write_advice
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        advice = advise(dataset, list(sources), labels_per_class, seed=seed, **options)
    click.echo(advice.format())
    if report_dir:
        click.echo(f"wrote {write_advice(advice, report_dir)}")
