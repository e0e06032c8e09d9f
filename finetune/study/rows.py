"""The rows of a comparison and the run's configuration: what a study returns, saves and reports.

One row per fine-tuned model (its ``metrics`` less the history), in task order; each
model saved in a folder named after its cell (:func:`cell_name`) when there are
several. :func:`keep` files the models of the tasks that finished, so a comparison
one of whose cells failed keeps the others (:class:`finetune.study.cells.CellFailed`).
"""
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..networks.sources import Source
from .budget import Budget


def cell_name(source: str, schedule: str, budget: Budget, seed: int) -> str:
    """A folder name for one fine-tuned model, e.g. ``random-runs-dbn_two-stage_10_seed0``."""
    parts = (source, schedule, budget.label, f"seed{seed}")
    return "_".join(re.sub(r"[^A-Za-z0-9]+", "-", part).strip("-") for part in parts)


class Results(list):
    """The rows of a comparison (one dict per fine-tuned model), with ``config``: how they were made."""

    def __init__(self, rows=(), config: Optional[Dict] = None):
        super().__init__(rows)
        self.config = dict(config or {})


def run_config(experiment, sources: Sequence[Source], schedules, budgets, seeds) -> Dict:
    """Everything that made ``experiment`` (an :class:`~finetune.study.experiment.Experiment`) compare ``sources``,
    for results.json: data, grid, options, sources' provenance, versions."""
    from pretrain.training.stack import versions
    options = {k: v for k, v in vars(experiment.options).items()
               if k not in ("head_config", "settings", "semi_settings")}
    data = experiment.dataset
    return {"data": {"spec": data.spec, "split_seed": data.split_seed, "n_classes": experiment.n_classes,
                     "classes": experiment.classes, "n_train": len(data.x_train), "n_test": len(data.x_test)},
            "grid": {"sources": [s.text for s in sources], "schedules": list(schedules),
                     "budgets": [b.label for b in budgets], "seeds": list(seeds)},
            "options": options, "sources": [source.provenance() for source in sources], "versions": versions()}


def keep(rows: Results, tasks: List[tuple], results: List, schedules: Sequence[str], save, several: bool) -> Results:
    """``rows`` with the row of every model in ``results`` (None: a task that did not finish), each saved under
    ``save`` when given (in a subfolder of its own when ``several``)."""
    for (_, source, seed, budget, _, _), models in zip(tasks, results):
        for schedule, model in zip(schedules, models or ()):
            rows.append({k: v for k, v in model.metrics.items() if k != "history"})
            if save is not None:
                model.save(Path(save, cell_name(source.text, schedule, budget, seed)) if several else Path(save))
    return rows
