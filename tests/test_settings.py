"""Each option is declared once (issue 29): the commands' click options, the library's keyword defaults and the
help text agree with the settings dataclasses of :mod:`pretrain.settings` and :mod:`finetune.settings`."""
import inspect
from dataclasses import fields

import click
import pytest

from finetune.cli import main as finetune_main
from finetune.settings import FinetuneSettings, StudyGrid
from finetune.study.experiment import Options, compare
from finetune.training.train import TrainSettings
from pretrain.cli import main as pretrain_main
from pretrain.core.errors import LayerwiseError
from pretrain.settings import CommonSettings, PretrainSettings, declared
from pretrain.training.greedy import pretrain_stack

COMMANDS = [(pretrain_main, [PretrainSettings]), (finetune_main, [FinetuneSettings, StudyGrid])]


def options_of(command: click.Command) -> dict:
    """The command's options by the name of their flag (``--batch-size`` -> ``batch_size``)."""
    return {max(param.opts, key=len)[2:].replace("-", "_"): param for param in command.params
            if isinstance(param, click.Option)}


def keyword_defaults(function) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("command, settings", COMMANDS, ids=["pretrain", "finetune"])
def test_every_setting_is_an_option_with_its_default_help_and_range(command, settings):
    options = options_of(command)
    for spec in (spec for cls in settings for spec in fields(cls)):
        option = options[spec.name]  # a setting no option offers would be declared for nothing
        default = option.default if not option.multiple else option.default[0]
        assert default == spec.default, spec.name
        assert option.help.startswith(spec.metadata["help"]), spec.name
        low, high = spec.metadata["low"], spec.metadata["high"]
        if low is not None or high is not None:
            assert (option.type.min, option.type.max) == (low, high), spec.name
            assert (option.type.min_open, option.type.max_open) == (spec.metadata["low_open"],
                                                                    spec.metadata["high_open"]), spec.name
        if spec.metadata["choices"]:
            assert tuple(option.type.choices) == tuple(spec.metadata["choices"]), spec.name


def test_the_libraries_take_the_same_defaults_as_the_commands():
    for function, settings in [(pretrain_stack, PretrainSettings), (compare, StudyGrid)]:
        defaults = keyword_defaults(function)
        shared = {spec.name for spec in fields(settings)} & set(defaults)
        assert len(shared) >= 3, function
        for name in shared:
            assert defaults[name] == getattr(settings(), name), (function, name)
    assert keyword_defaults(compare)["schedules"] == (StudyGrid().schedule,)
    options, train = Options(progress=False), TrainSettings()
    for spec in fields(FinetuneSettings):
        if spec.name != "semi_weight":  # None asks the method's own weight, which Options fills in
            assert getattr(options, spec.name) == spec.default, spec.name
    assert (train.lr, train.epochs, train.batch_size) == (options.lr, options.epochs, options.batch_size)


def test_both_commands_share_the_common_settings():
    for command, _ in COMMANDS:
        options = options_of(command)
        for spec in fields(CommonSettings):
            assert options[spec.name].default == spec.default and options[spec.name].help.startswith(
                spec.metadata["help"]), spec.name


def bounded(settings: type, takes=None) -> list:
    """The names of the fields of ``settings`` that declare a lower bound (and that ``takes`` takes)."""
    taken = inspect.signature(takes).parameters if takes else None
    return [spec.name for spec in fields(settings)
            if spec.metadata["low"] is not None and (taken is None or spec.name in taken)]


def just_below(settings: type, name: str):
    """The value just outside the lower end of a field's range."""
    meta = declared(settings, name).metadata
    return meta["low"] if meta["low_open"] else meta["low"] - 1


@pytest.mark.parametrize("name", bounded(FinetuneSettings))
def test_the_library_refuses_what_the_command_refuses(name):
    """Below a finetune setting's range, ``Options`` (what ``compare`` and ``advise`` build) fails in one line
    that names the setting and its range."""
    with pytest.raises(LayerwiseError, match=f"{name}=.*: {name} must be (at least|above)"):
        Options(**{name: just_below(FinetuneSettings, name)}, progress=False)


@pytest.mark.parametrize("name", bounded(PretrainSettings, pretrain_stack))
def test_pretrain_stack_refuses_what_the_command_refuses(name):
    with pytest.raises(LayerwiseError, match=f"{name}=.*: {name} must be (at least|above)"):
        pretrain_stack("digits", ["rbm:4"], **{name: just_below(PretrainSettings, name)})


def test_a_nan_rate_and_the_upper_ends_are_refused_too():
    with pytest.raises(LayerwiseError, match="lr=nan: lr must be above 0"):
        Options(lr=float("nan"), progress=False)
    with pytest.raises(LayerwiseError, match="val_fraction=1: val_fraction must be at least 0 and below 1"):
        pretrain_stack("digits", ["rbm:4"], val_fraction=1)
