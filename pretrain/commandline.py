"""What both commands share on the command line: options, parsing types and error reporting.

No command module imports another; ``pretrain.cli`` and ``finetune.cli``
both take their common pieces from here. Exit status: 2 for a usage mistake
(click's usage line and one error line: a malformed spec, a value out of
range, a missing argument), 1 for a failure (one ``Error: ...`` line: a
missing file, a diverged run), 130 on Ctrl-C and 143 on SIGTERM (both unwind the run: see
:mod:`pretrain.core.stopping`); never a traceback for any.
"""
import functools
import math
import re
import sys
from pathlib import Path
from typing import Callable

import click

from . import __version__
from .data.specs import DATA_ENV, DEFAULT_DATA_DIR, describe_specs
from .core.errors import LayerwiseError, UsageMistake
from .core.process import prepare_process
from .core.stopping import Stopped, exit_status, stop_on_sigterm
from .settings import CommonSettings, declared, value_type


CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}


class Command(click.Command):
    """A command that prepares its process (:func:`pretrain.core.process.prepare_process`) as it starts, in
    ``main``: what its console script, ``python -m`` and click's ``CliRunner`` call, before any parsing.
    Importing the command module prepares nothing."""

    def main(self, *args, **kwargs):
        prepare_process()
        return super().main(*args, **kwargs)


def data_help() -> str:
    """The DATA argument's help (a command's epilog), derived from the table of spec kinds."""
    return "\b\nDATA is one of:\n" + describe_specs()


def one_line(message: str) -> str:
    """``message`` with control characters (a newline typed into a path) escaped, so it stays one line."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], message)


class Finite(click.FloatRange):
    """A float range that also refuses NaN and infinity (``nan < min`` is False, so a plain range lets NaN in)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{number} is not a finite number", param, ctx)
        return number


class Parsed(click.ParamType):
    """A click type for a value our own parser reads: its one-line error becomes a usage error (exit 2)."""

    def __init__(self, parse: Callable, metavar: str):
        self.parse, self.name, self.metavar = parse, metavar, metavar

    def get_metavar(self, param, ctx=None) -> str:
        return self.metavar

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except LayerwiseError as error:
            self.fail(one_line(str(error)), param, ctx)


def in_flags(message: str, command: click.Command) -> str:
    """The library names Python arguments (``overwrite=True``, ``labels_per_class=500``); say them as flags.

    Derived from the command's own options, so every option is declared once.
    Values inside specs (``-l rbm:10,lr=0.01``) are left alone: a name counts
    only after a space, a quote or a parenthesis, or at the start.
    """
    for param in command.params:
        if isinstance(param, click.Option) and param.name:
            flag = max(param.opts, key=len)
            message = re.sub(rf"(^|[\s(`'\"]){param.name}=(True|\S+?)(?=[\s:;,)`'\"]|$)",
                             lambda m: m.group(1) + (flag if param.is_flag else f"{flag} {m.group(2)}"), message)
    return message


def report_errors(command):
    """Turn failures (:class:`LayerwiseError`) into one ``Error: ...`` line and exit 1, never a traceback; a
    :class:`UsageMistake` into a usage error (exit 2)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with stop_on_sigterm():
                return command(*args, **kwargs)
        except UsageMistake as error:
            raise usage_error(in_flags(str(error), click.get_current_context().command)) from None
        except LayerwiseError as error:
            raise click.ClickException(one_line(in_flags(str(error), click.get_current_context().command))) from None
        except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM as Stopped
            click.echo(interrupted_line(interrupt, click.get_current_context().params.get("out")), err=True)
            sys.exit(exit_status(interrupt))
    return wrapper


def interrupted_line(interrupt: KeyboardInterrupt, out) -> str:
    """What a stopped command says: whether its output folder ``out`` (``pretrain -o``) kept a checkpoint to
    resume from (the run's ``with`` blocks have released and tidied the folder by now)."""
    from .training.checkpoint import CHECKPOINT
    how = f"Stopped ({interrupt})" if isinstance(interrupt, Stopped) else "Interrupted"
    if out is None:
        return f"{how}."
    if (Path(out) / CHECKPOINT).exists():
        return f"{how}: {out} keeps the last finished epoch; rerun with --resume to continue."
    return f"{how} before the first epoch was checkpointed: nothing to resume in {out}."


def command_line(ctx: click.Context) -> list:
    """The command as it ran, rebuilt from its parsed parameters (defaults left out): what reproduces it."""
    words = [ctx.command.name]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            words += [str(value)] if value is not None else []
            continue
        default = param.default if isinstance(param.default, (list, tuple, str, int, float)) else None
        if param.multiple:
            if list(value or ()) == list(default or ()):
                continue
        elif value is None or value is False or value == default:
            continue
        flag = max(param.opts, key=len)
        if param.is_flag:
            words.append(flag)
        else:
            for item in (value if param.multiple else [value]):
                words += [flag, str(getattr(item, "text", item))]
    return words


def usage_error(message: str) -> click.UsageError:
    """A usage mistake found after parsing (a missing argument, options that do not go together): exit 2."""
    return click.UsageError(one_line(message), click.get_current_context(silent=True))


def setting_option(settings: type, name: str, *declarations: str, **overrides):
    """The click option of field ``name`` of ``settings`` (:mod:`pretrain.settings`): its flag (``--name-with-dashes``
    unless ``declarations`` are given), default, help, and a type that holds the field's range or choices;
    ``overrides``: click's keywords where the option needs more (a parser, ``multiple``)."""
    spec = declared(settings, name)
    meta, kind = spec.metadata, value_type(spec)
    option = {"default": spec.default, "help": meta["help"]}
    if kind is bool:
        option["is_flag"] = True
    elif meta["choices"]:
        option["type"] = click.Choice(meta["choices"])
    elif kind is int and (meta["low"], meta["high"]) != (None, None):
        option["type"] = click.IntRange(meta["low"], meta["high"], min_open=meta["low_open"],
                                        max_open=meta["high_open"])
    elif kind is float:
        option["type"] = Finite(meta["low"], meta["high"], min_open=meta["low_open"], max_open=meta["high_open"])
    return click.option(*(declarations or ("--" + name.replace("_", "-"),)), **{**option, **overrides})


def common_options(command):
    """``--device``, ``--threads``, ``--data-dir``, ``--split-seed`` (:class:`pretrain.settings.CommonSettings`),
    ``--version``: declared once for both commands."""
    for option in reversed([
        setting_option(CommonSettings, "device"),
        setting_option(CommonSettings, "threads"),
        setting_option(CommonSettings, "data_dir", type=click.Path(file_okay=False), envvar=DATA_ENV,
                       show_envvar=True, help=f"{declared(CommonSettings, 'data_dir').metadata['help']}  "
                                              f"[default: {DEFAULT_DATA_DIR}]"),
        setting_option(CommonSettings, "split_seed"),
        click.version_option(__version__, "--version", message="%(prog)s (layerwise) %(version)s"),
    ]):
        command = option(command)
    return command
