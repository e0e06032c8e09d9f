"""Sources x schedules x label budgets x seeds -> one row per fine-tuned model.

Every cell of one seed and budget fine-tunes on the same label sample, so the
pretrained stack and its ``random:`` control are compared on equal terms.
Each source is parsed and bound to the data once (its body built once, its
weights read once); each source's preprocessing runs once per split (the
test set once per source, the labeled sample once per seed and budget), in
chunks, and training then works on tensors.
"""
import itertools
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from pretrain.core.batches import map_batches
from pretrain.core.device import deterministic_convolutions
from pretrain.data.specs import resolve_data
from pretrain.core.distributed import is_writer, process_group, world_size
from pretrain.core.errors import LayerwiseError, UsageMistake
from pretrain.core.progress import progress_line

from pretrain.settings import check_ranges

from ..networks.body import Body
from ..settings import GRID, FinetuneSettings
from .budget import Budget, parse_budgets, sample_labels, validation_split
from .checks import SAVED, check_output_folder, check_study_data
from .cells import CellFailed, execute
from .workers import cell_threads, worker_processes
from .rows import Results, keep, run_config
from ..networks.classifier import Classifier, build_head, parse_head
from ..training.augment import Augment, make_augment
from ..training.schedule import check_schedule, make_stages
from ..training.semi import DROPOUT, RAMP, SemiSettings, SemiTerm, UnlabeledPool, semi_settings
from ..networks.sources import Source, parse_source
from ..training.train import TrainSettings, test_metrics, train_classifier

PREPROCESS_CHUNK = 1024


@dataclass
class Options(FinetuneSettings):
    """Everything about a fine-tuning run except the grid: :class:`finetune.settings.FinetuneSettings` (see
    ``finetune --help`` for each), and what the command does not ask."""

    progress: bool = True
    #: optimizer steps (T1, T2) of a stage between which the pseudo-label weight rises from 0 to ``semi_weight``
    semi_ramp: Tuple[int, int] = RAMP
    #: dropout probability in the body under pseudo-labels
    semi_dropout: float = DROPOUT
    head_config: dict = field(init=False)
    settings: TrainSettings = field(init=False)
    semi_settings: SemiSettings = field(init=False)

    def __post_init__(self):
        from pretrain.core.device import resolve_device
        check_ranges(FinetuneSettings, vars(self))
        self.head_config = parse_head(self.head)
        self.semi_settings = semi_settings(self.semi, self.semi_weight, self.semi_ramp, self.semi_dropout)
        self.semi_weight = self.semi_settings.weight
        self.settings = TrainSettings(lr=self.lr, epochs=self.epochs, batch_size=self.batch_size,
                                      device=resolve_device(self.device), progress=self.progress)


def preprocess(body: Body, raw: np.ndarray) -> torch.Tensor:
    """``body.preprocess`` over raw data in chunks (image backbones resize to big tensors)."""
    return map_batches(body.preprocess, raw, PREPROCESS_CHUNK)


class Experiment:
    """A dataset, the options, and the label samples: trains one cell at a time."""

    def __init__(self, data, options: Options):
        self.options = options
        self.dataset = resolve_data(data, options.data_dir, options.split_seed)
        self.x_train, self.y_train = check_study_data(self.dataset, options.semi != "none")
        self.n_classes = self.dataset.n_classes
        self.classes = self.dataset.class_names
        self.samples: Dict[tuple, np.ndarray] = {}
        #: the unlabeled pool of ``semi`` (:meth:`pretrain.data.Dataset.pretraining_images`), joined on first use
        self.unlabeled: Optional[np.ndarray] = None
        augment = make_augment(options.augment, self.dataset.image_shape if self.dataset.is_image else None)
        self.settings = replace(options.settings, augment=augment)
        if options.semi == "consistency" and not self.dataset.is_image:
            raise UsageMistake("semi=consistency perturbs images, and this data is not images: "
                               "use semi=pseudo-label or semi=reconstruction")

    def sample(self, budget: Budget, seed: int) -> np.ndarray:
        """Indices of the label sample of ``budget`` and ``seed``: the same for every source and schedule."""
        if (budget, seed) not in self.samples:
            self.samples[budget, seed] = sample_labels(self.y_train, budget, seed, self.dataset.classes)
        return self.samples[budget, seed]

    def bind(self, source: Union[str, Source]) -> Source:
        """``source`` parsed (if given as text) and bound to the data: its body built once."""
        source = parse_source(source) if isinstance(source, str) else source
        return source.bind(self.dataset, self.options.input_size, self.options.adapt_first_conv)

    def body(self, source: Source, seed: int) -> Body:
        """A fresh body of ``source`` with its top groups dropped; a random control draws its weights from ``seed``."""
        return source.body(seed).drop_top(self.options.drop_top)

    def stages(self, schedule: str, body: Body):
        o = self.options
        return make_stages(schedule, len(body.groups), o.unfreeze, o.body_lr_scale, o.lr_decay)

    def decoders(self, source: Source, schedule: str, seed: int) -> Optional[List[torch.nn.Module]]:
        """The decoders ``semi=reconstruction`` trains with (None for other methods); one line where it cannot apply."""
        if self.options.semi != "reconstruction":
            return None
        decoders, body = source.decoders(seed), self.body(source, seed)
        if all(stage.frozen == len(body.groups) for stage in self.stages(schedule, body)):
            raise UsageMistake(f"semi=reconstruction needs a schedule that trains the body: the {schedule} schedule "
                               f"trains the head alone; use two-stage, full or gradual, or semi=pseudo-label")
        return decoders[:len(body.groups)]

    def semi_term(self, body: Body, seed: int, decoders: Optional[List[torch.nn.Module]]) -> Optional[SemiTerm]:
        """The unlabeled term of a cell (None under ``semi=none``): the pool drawn from ``seed``, the decoders."""
        settings = self.options.semi_settings
        if settings.method == "none":
            return None
        if self.unlabeled is None:  # train + unlabeled, joined once per experiment
            self.unlabeled = self.dataset.pretraining_images()
        pool = UnlabeledPool(self.unlabeled, body.preprocess, self.options.batch_size, seed)
        return SemiTerm(settings, pool, decoders, self.weak_perturbation() if settings.method == "consistency" else None)

    def weak_perturbation(self) -> Augment:
        """The weak view of ``semi=consistency``: the labeled batches' augmentation, or ``shift`` under ``none``."""
        return self.settings.augment or make_augment("shift", self.dataset.image_shape)

    def run(self, source: str, body: Body, schedule: str, budget: Budget, seed: int, inputs: torch.Tensor,
            test_inputs: torch.Tensor, decoders: Optional[List[torch.nn.Module]] = None) -> Classifier:
        """Fine-tune ``body`` (a fresh copy from its source) on the preprocessed label sample ``inputs`` of ``budget`` and ``seed``.

        ``decoders``: those of :meth:`decoders` under ``semi=reconstruction``. The classifier's
        ``metrics`` are the row of the results (plus the stages' history).
        """
        started = time.perf_counter()
        torch.manual_seed(seed)
        head = build_head(self.options.head_config, body.out_features, self.n_classes)
        model = Classifier(body, head, self.options.head_config, self.classes, self.options.drop_top)
        labels = self.y_train[self.sample(budget, seed)]
        fit_rows, val_rows = validation_split(labels, seed)
        y = torch.from_numpy(labels.astype(np.int64))
        val = (inputs[val_rows], y[val_rows]) if len(val_rows) else None
        desc = f"{source} {schedule} labels {budget.label} seed {seed}"
        with deterministic_convolutions(self.settings.device):  # the cell repeats from its seed on CUDA too
            history = train_classifier(model, self.stages(schedule, body), (inputs[fit_rows], y[fit_rows]), val,
                                       self.settings, desc, self.semi_term(body, seed, decoders))
        seconds = time.perf_counter() - started
        metrics = test_metrics(model, test_inputs, self.dataset.y_test, self.n_classes, self.settings.device)
        model.metrics = {"source": source, "schedule": schedule, "semi": self.options.semi,
                         "semi_weight": self.options.semi_weight, "augment": self.options.augment,
                         "labels_per_class": budget.labels_per_class(self.n_classes), "labels": len(labels),
                         "n_classes": self.n_classes, "seed": seed, **metrics, "train_seconds": round(seconds, 3),
                         "epochs": sum(stage["epochs"] for stage in history), "C": history[0].get("C"),
                         "kept": history[-1].get("kept"), "history": history}
        progress_line(f"{desc}: test accuracy {metrics['test_accuracy']:.3f} ({seconds:.1f} s)", self.options.progress)
        return model


def compare(data, sources: Sequence[str], schedules: Sequence[str] = (GRID.schedule,),
            labels_per_class: Union[str, Sequence, None] = GRID.labels_per_class,
            seeds: Union[int, Sequence[int]] = GRID.seeds, *, labels: Union[str, Sequence, None] = GRID.labels,
            save: Union[str, Path, None] = None,
            overwrite: bool = False, **options) -> Results:
    """Fine-tune every source with every schedule at every label budget, once per seed; return the rows.

    ``data``: a data spec (``digits``, ``idx:DIR`` ...), a :class:`pretrain.data.specs.Dataset` or arrays;
    ``sources``: ``--from`` values; ``labels_per_class``: ``"1,10,all"`` or a list, and/or
    ``labels``: totals (with neither: 1, 10 and 100 per class); ``seeds``: how many (0, 1, ...)
    or which; ``options``: the fields of :class:`Options`. With ``save`` every model is saved
    there (in one subfolder each when there are several); a ``save`` folder that already holds a
    model is refused before anything trains, unless ``overwrite``. When a cell fails with a
    :class:`LayerwiseError`, the models that finished are saved all the same, and the error
    (:class:`finetune.study.cells.CellFailed`) carries their rows as ``rows``. Each row: source, schedule,
    labels_per_class, labels, n_classes, seed, test_accuracy, macro_f1, train_seconds, epochs;
    the returned :class:`Results` also carry the run's ``config``.
    """
    if not sources:
        raise LayerwiseError("no source: give at least one source, e.g. sources=['runs/dbn', 'random:runs/dbn']")
    settings = Options(**options)
    check_output_folder(save, SAVED, "save", overwrite)
    with worker_processes(settings.jobs, settings.threads):  # their start overlaps the reading of the data
        return run_comparison(data, settings, sources, schedules, labels_per_class, seeds, labels, save)


def run_comparison(data, settings: Options, sources: Sequence[str], schedules: Sequence[str], labels_per_class,
                   seeds, labels, save) -> Results:
    """:func:`compare` once its options are checked and its workers are starting."""
    experiment = Experiment(data, settings)
    schedules = [check_schedule(name) for name in schedules]
    budgets = parse_budgets(labels_per_class, labels)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise LayerwiseError("seeds: give at least one")
    for budget, seed in itertools.product(budgets, seeds):
        experiment.sample(budget, seed)
    bound = [experiment.bind(source) for source in sources]
    for source in bound:  # every source, budget and schedule is checked before the first model trains
        body = experiment.body(source, seeds[0])
        for schedule in schedules:
            experiment.stages(schedule, body)
            experiment.decoders(source, schedule, seeds[0])
    several = len(bound) * len(schedules) * len(budgets) * len(seeds) > 1
    rows = Results(config=run_config(experiment, bound, schedules, budgets, seeds))
    tasks = []
    for source in bound:  # the test set is preprocessed once per source, in this process
        test_inputs = preprocess(experiment.body(source, seeds[0]), experiment.dataset.x_test).numpy()
        tasks += [(experiment, source, seed, budget, schedules, test_inputs)
                  for seed, budget in itertools.product(seeds, budgets)]
    options = experiment.options
    with process_group(options.settings.device) as device:  # under torchrun: the cells spread over the processes
        options.settings.device, writer = device, is_writer()
        options.progress = options.settings.progress = options.progress and writer
        rows.config["world_size"] = world_size()
        rows.config["threads"] = dict(zip(("threads", "why"), cell_threads(options.jobs, options.threads)))
        try:
            results = execute(train_cells, tasks, options.jobs, options.threads,
                              cost=lambda task: len(experiment.sample(task[3], task[2])))  # labels: a cell's length
        except CellFailed as failure:  # what finished is kept: its rows on the error, its models saved
            failure.rows = keep(rows, tasks, failure.results, schedules, save if writer else None, several)
            raise
    return keep(rows, tasks, results, schedules, save if writer else None, several)


def train_cells(experiment: Experiment, source: Source, seed: int, budget: Budget, schedules: Sequence[str],
                test_inputs: np.ndarray) -> List[Classifier]:
    """One task of a comparison: the label sample of ``budget`` and ``seed`` preprocessed once, then one
    fine-tuned model per schedule, each from a fresh body."""
    inputs = preprocess(experiment.body(source, seed), experiment.x_train[experiment.sample(budget, seed)])
    test = torch.from_numpy(np.array(test_inputs))  # a private, writable copy (workers get read-only maps)
    return [experiment.run(source.text, experiment.body(source, seed), schedule, budget, seed, inputs, test,
                           experiment.decoders(source, schedule, seed))
            for schedule in schedules]


def fine_tune(data, source: str, *, schedule: str = "two-stage", labels_per_class: Union[int, str] = 10,
              labels: Optional[int] = None, seed: int = 0, **options) -> Classifier:
    """Fine-tune one model of ``source`` on a seeded label sample of ``data``; return the :class:`Classifier`.

    ``labels_per_class`` (or a total ``labels``) is the budget; ``options``: the fields of
    :class:`Options`. The classifier's ``metrics`` hold its test accuracy and macro F1.
    """
    experiment = Experiment(data, Options(**options))
    budget = parse_budgets(None, [labels])[0] if labels is not None else parse_budgets([labels_per_class])[0]
    sample = experiment.sample(budget, seed)
    bound = experiment.bind(source)
    body = experiment.body(bound, seed)
    decoders = experiment.decoders(bound, check_schedule(schedule), seed)
    return experiment.run(bound.text, body, schedule, budget, seed, preprocess(body, experiment.x_train[sample]),
                          preprocess(body, experiment.dataset.x_test), decoders)
