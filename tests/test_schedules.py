"""Schedules are one registry (issue 29, item 4): --schedule's choices and help come from it, every entry makes
stages, and a name without an entry fails in one line instead of falling through to another schedule."""
import pytest
from click.testing import CliRunner

from finetune.cli import main
from finetune.training.schedule import SCHEDULE_REGISTRY, make_stages
from pretrain.core.errors import LayerwiseError


@pytest.mark.parametrize("name", sorted(SCHEDULE_REGISTRY))
def test_every_schedule_trains_the_head_and_ends_with_the_asked_groups_trainable(name):
    stages = make_stages(name, n_groups=3, unfreeze=2)
    assert stages and all(0 <= stage.frozen <= 3 for stage in stages)
    assert stages[-1].frozen == {"linear": 3, "full": 0}.get(name, 1)  # two-stage, gradual: the top 2 of 3


def test_an_unknown_schedule_fails_in_one_line_naming_the_known_ones():
    with pytest.raises(LayerwiseError, match="unknown schedule 'slow': use one of linear, two-stage") as error:
        make_stages("slow", n_groups=3)
    assert "\n" not in str(error.value)


def test_the_help_of_schedule_is_the_registrys():
    shown = " ".join(CliRunner().invoke(main, ["--help"], terminal_width=2000).output.split())
    for name, entry in SCHEDULE_REGISTRY.items():
        assert f"{name}: {entry.help}" in shown
