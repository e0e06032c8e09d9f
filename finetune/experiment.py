"""Sources x schedules x label budgets x seeds -> one row per fine-tuned model.

Every cell of one seed and budget fine-tunes on the same label sample, so the
pretrained stack and its ``random:`` control are compared on equal terms.
Each source's preprocessing runs once per split (the test set once per
source, the labeled sample once per seed and budget), in chunks, and training
then works on tensors.
"""
import copy
import itertools
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from pretrain.errors import LayerwiseError

from .body import Body
from .budget import Budget, check_labeled, parse_budgets, sample_labels, validation_split
from .classifier import Classifier, build_head, parse_head
from .schedule import check_schedule, make_stages
from .sources import make_body
from .train import TrainSettings, evaluate, train_classifier

PREPROCESS_CHUNK = 1024


@dataclass
class Options:
    """Everything about a fine-tuning run except the grid (see ``finetune --help`` for each)."""

    head: str = "linear"
    drop_top: int = 0
    unfreeze: Optional[int] = None
    body_lr_scale: float = 0.1
    lr_decay: float = 1.0
    lr: float = 1e-3
    epochs: int = 100
    batch_size: int = 64
    device: str = "auto"
    data_dir: Optional[str] = None
    split_seed: int = 0
    input_size: Optional[int] = None
    adapt_first_conv: bool = False
    progress: bool = False
    head_config: dict = field(init=False)
    settings: TrainSettings = field(init=False)

    def __post_init__(self):
        from pretrain.greedy import resolve_device
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise LayerwiseError("--epochs and --batch-size must be at least 1 and --lr positive")
        self.head_config = parse_head(self.head)
        self.settings = TrainSettings(lr=self.lr, epochs=self.epochs, batch_size=self.batch_size,
                                      device=resolve_device(self.device), progress=self.progress)


def preprocess(body: Body, raw: np.ndarray) -> torch.Tensor:
    """``body.preprocess`` over raw data in chunks (image backbones resize to big tensors)."""
    return torch.cat([body.preprocess(raw[i:i + PREPROCESS_CHUNK]) for i in range(0, len(raw), PREPROCESS_CHUNK)])


def cell_name(source: str, schedule: str, budget: Budget, seed: int) -> str:
    """A folder name for one fine-tuned model, e.g. ``random-runs-dbn_two-stage_10_seed0``."""
    parts = (source, schedule, budget.label, f"seed{seed}")
    return "_".join(re.sub(r"[^A-Za-z0-9]+", "-", part).strip("-") for part in parts)


class Experiment:
    """A dataset, the options, and the label samples: trains one cell at a time."""

    def __init__(self, data, options: Options):
        from pretrain.data import Dataset, load_data
        self.options = options
        self.dataset = data if isinstance(data, Dataset) else load_data(
            data, data_dir=options.data_dir, split_seed=options.split_seed)
        self.x_train, self.y_train = check_labeled(self.dataset)
        self.n_classes = self.dataset.n_classes
        self.classes = self.dataset.classes or [str(c) for c in range(self.n_classes)]
        self.samples: Dict[tuple, np.ndarray] = {}

    def sample(self, budget: Budget, seed: int) -> np.ndarray:
        """Indices of the label sample of ``budget`` and ``seed``: the same for every source and schedule."""
        if (budget, seed) not in self.samples:
            self.samples[budget, seed] = sample_labels(self.y_train, budget, seed, self.dataset.classes)
        return self.samples[budget, seed]

    def body(self, source: str, seed: int) -> Body:
        """The body of ``source`` with its top groups dropped; a random control draws its weights from ``seed``."""
        torch.manual_seed(seed)
        body = make_body(source, self.dataset, split_seed=self.options.split_seed,
                         input_size=self.options.input_size, adapt_first_conv=self.options.adapt_first_conv)
        return body.drop_top(self.options.drop_top)

    def stages(self, schedule: str, body: Body):
        o = self.options
        return make_stages(schedule, len(body.groups), o.unfreeze, o.body_lr_scale, o.lr_decay)

    def run(self, source: str, body: Body, schedule: str, budget: Budget, seed: int, inputs: torch.Tensor,
            test_inputs: torch.Tensor) -> Classifier:
        """Fine-tune a copy of ``body`` on the preprocessed label sample ``inputs`` of ``budget`` and ``seed``.

        The classifier's ``metrics`` are the row of the results (plus the stages' history).
        """
        started = time.perf_counter()
        torch.manual_seed(seed)
        body = copy.deepcopy(body)
        head = build_head(self.options.head_config, body.out_features, self.n_classes)
        model = Classifier(body, head, self.options.head_config, self.classes, self.options.drop_top)
        labels = self.y_train[self.sample(budget, seed)]
        fit_rows, val_rows = validation_split(labels, seed)
        y = torch.from_numpy(labels.astype(np.int64))
        val = (inputs[val_rows], y[val_rows]) if len(val_rows) else None
        desc = f"{source} {schedule} labels {budget.label} seed {seed}"
        history = train_classifier(model, self.stages(schedule, body), (inputs[fit_rows], y[fit_rows]), val,
                                   self.options.settings, desc)
        seconds = time.perf_counter() - started
        metrics = evaluate(model, test_inputs, self.dataset.y_test, self.n_classes, self.options.settings.device)
        model.metrics = {"source": source, "schedule": schedule,
                         "labels_per_class": budget.labels_per_class(self.n_classes), "labels": len(labels),
                         "seed": seed, **metrics, "train_seconds": round(seconds, 3),
                         "epochs": sum(stage["epochs"] for stage in history), "history": history}
        if self.options.progress:
            tqdm.write(f"{desc}: test accuracy {metrics['test_accuracy']:.3f} ({seconds:.1f} s)", file=sys.stderr)
        return model


def compare(data, sources: Sequence[str], schedules: Sequence[str] = ("two-stage",),
            labels_per_class: Union[str, Sequence, None] = None, seeds: Union[int, Sequence[int]] = 1, *,
            labels: Union[str, Sequence, None] = None, save: Union[str, Path, None] = None,
            **options) -> List[Dict]:
    """Fine-tune every source with every schedule at every label budget, once per seed; return the rows.

    ``data``: a data spec (``digits``, ``idx:DIR`` ...) or a :class:`pretrain.data.Dataset`;
    ``sources``: ``--from`` values; ``labels_per_class``: ``"1,10,all"`` or a list, and/or
    ``labels``: totals (with neither: 1, 10 and 100 per class); ``seeds``: how many (0, 1, ...)
    or which; ``options``: the fields of :class:`Options`. With ``save`` every model is saved
    there (in one subfolder each when there are several). Each row: source, schedule,
    labels_per_class, labels, seed, test_accuracy, macro_f1, train_seconds, epochs.
    """
    if not sources:
        raise LayerwiseError("no source: give at least one --from STACK_DIR (and random:STACK_DIR as its control)")
    experiment = Experiment(data, Options(**options))
    schedules = [check_schedule(name) for name in schedules]
    budgets = parse_budgets(labels_per_class, labels)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise LayerwiseError("--seeds must be at least 1")
    for budget, seed in itertools.product(budgets, seeds):
        experiment.sample(budget, seed)
    for source in sources:  # every source, budget and schedule is checked before the first model trains
        body = experiment.body(source, seeds[0])
        for schedule in schedules:
            experiment.stages(schedule, body)
    several = len(sources) * len(schedules) * len(budgets) * len(seeds) > 1
    rows = []
    for source in sources:
        test_inputs = None
        for seed in seeds:
            body = experiment.body(source, seed)
            if test_inputs is None:
                test_inputs = preprocess(body, experiment.dataset.x_test)
            for budget in budgets:
                inputs = preprocess(body, experiment.x_train[experiment.sample(budget, seed)])
                for schedule in schedules:
                    model = experiment.run(source, body, schedule, budget, seed, inputs, test_inputs)
                    rows.append({k: v for k, v in model.metrics.items() if k != "history"})
                    if save is not None:
                        model.save(Path(save, cell_name(source, schedule, budget, seed)) if several else Path(save))
    return rows


def fine_tune(data, source: str, *, schedule: str = "two-stage", labels_per_class: Union[int, str] = 10,
              labels: Optional[int] = None, seed: int = 0, **options) -> Classifier:
    """Fine-tune one model of ``source`` on a seeded label sample of ``data``; return the :class:`Classifier`.

    ``labels_per_class`` (or a total ``labels``) is the budget; ``options``: the fields of
    :class:`Options`. The classifier's ``metrics`` hold its test accuracy and macro F1.
    """
    experiment = Experiment(data, Options(**options))
    budget = parse_budgets(None, [labels])[0] if labels is not None else parse_budgets([labels_per_class])[0]
    sample = experiment.sample(budget, seed)
    body = experiment.body(source, seed)
    return experiment.run(source, body, check_schedule(schedule), budget, seed,
                          preprocess(body, experiment.x_train[sample]), preprocess(body, experiment.dataset.x_test))
