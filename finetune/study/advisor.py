"""A measured advisor: which source, which cut and which schedule for this task, from cheap measurements.

For every candidate body (each ``--from`` value, its control: ``random:DIR``
for a stack, ``@none`` for an ImageNet backbone, and ``pixels``) and every
cut (each layer of a stack: the ``--drop-top`` choices; each group boundary
of a backbone) the labeled sample's features are computed once, frozen, in
eval mode (one pass per source gives every cut), and scored:

* ``probe``: the stratified k-fold accuracy of the converged, standardised
  logistic regression of :mod:`finetune.training.probe` (what ``--schedule linear``
  fits) at its default strength ``C = FIXED_C``; it needs 2 labels per class;
* ``logme``: LogME (You et al., ICML 2021; :mod:`finetune.study.logme`), the
  evidence of a Bayesian linear model on the features; defined at any budget.

The candidates are ranked by LogME (``score="logme"``, ties broken by the
probe): on the tasks of ``examples/benchmarks/advisor.py`` it agreed better
with the fine-tuned accuracies than the probe (Kendall's tau across each
task's candidates; see that benchmark's results), and it costs one SVD where
the probe costs k fits. The top candidate's source and cut are the
recommendation; its schedule comes from where the task sits on the lecture
notes' map of data size and similarity:

* size: *large* when there are at least ``LARGE_PER_CLASS`` labels per class,
  else *small*;
* similarity: a source is *similar* when its top-layer features beat its
  control's (the same architecture with random weights) on the ranking score,
  *different* otherwise; a control or ``pixels`` ranked first means that
  pretraining does not help here at all.

=========================  ==================================================
small (similar or not)     ``linear`` at the best cut (for different data the
                           ranking already picks an earlier layer)
large and similar          ``two-stage`` with ``--unfreeze`` all groups kept
large and different        ``full``: fine-tune everything
a control ranked first     the architecture from scratch: ``full`` when large,
                           ``linear`` on its random features when small
``pixels`` ranked first    ``linear``: logistic regression on the inputs
=========================  ==================================================
"""
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from pretrain.core.batches import map_batches
from pretrain.core.errors import LayerwiseError
from pretrain.core.io import save_json

from ..networks.body import Body
from .budget import Budget, parse_budgets
from .experiment import Experiment, Options, preprocess
from .logme import logme
from ..training.probe import FIXED_C, cross_validate, standardize
from ..networks.sources import PixelsSource, RandomSource, Source, TorchvisionSource, parse_source

#: labels per class from which a task counts as large, where training the body is worth its cost (a choice:
#: at 1 and 10 per class the probe on frozen features is the notes' advice and measured near the best).
LARGE_PER_CLASS = 50
FEATURE_CHUNK = 256


@dataclass
class Candidate:
    """One source cut after ``cut`` of its ``groups`` layer groups, with its scores and what measuring it cost."""

    source: str
    kind: str  # "pretrained", "control" (random weights) or "pixels"
    cut: int
    groups: int
    layer: str
    features: int
    probe: Optional[float]
    logme: float
    seconds: float
    control: Optional[str] = None
    #: ranking score minus the control's at the same cut (pretrained sources only)
    gain: Optional[float] = None

    @property
    def drop_top(self) -> int:
        return self.groups - self.cut


@dataclass
class Advice:
    """The recommendation (``source``, ``args``, ``scenario``, ``why``), the scored candidates, the ranking score."""

    recommendation: Dict
    candidates: List[Candidate]
    score: str

    def to_dict(self) -> Dict:
        return {"recommendation": self.recommendation, "score": self.score,
                "candidates": [{**asdict(c), "drop_top": c.drop_top} for c in self.candidates]}

    def format(self) -> str:
        """The evidence table and the recommendation, as printed by ``finetune --advise``."""
        lines = [f"{'source':<40} {'layer':<14} {'drop':>4} {'probe':>6} {'LogME':>8} {'gain':>7} "
                 f"{'seconds':>7}"]
        for c in self.candidates:
            probe = f"{c.probe:.3f}" if c.probe is not None else "-"
            gain = f"{c.gain:+.3f}" if c.gain is not None else "-"
            lines.append(f"{c.source[-40:]:<40} {c.layer:<14} {c.drop_top:>4} {probe:>6} {c.logme:>8.3f} "
                         f"{gain:>7} {c.seconds:>7.2f}")
        r = self.recommendation
        lines += ["", f"scenario: {r['scenario']}", f"why: {r['why']}", "run: finetune " + " ".join(r["args"])]
        return "\n".join(lines)


def single_budget(labels_per_class) -> Budget:
    """The one per-class budget the advisor measures; a one-line error for none or several."""
    single = [labels_per_class] if isinstance(labels_per_class, int) else labels_per_class
    budgets = parse_budgets(single) if single is not None else []
    if len(budgets) != 1:
        raise LayerwiseError(f"labels_per_class={labels_per_class}: the advisor measures one budget; give a single "
                             "count, e.g. labels_per_class=10")
    return budgets[0]


def kind_of(source) -> str:
    if isinstance(source, PixelsSource):
        return "pixels"
    if isinstance(source, RandomSource) or (isinstance(source, TorchvisionSource) and source.control is None):
        return "control"
    return "pretrained"


def candidate_sources(sources: Sequence[Union[str, Source]]) -> List[str]:
    """The ``--from`` values to measure: each source followed by its control, then ``pixels``; no repeats."""
    texts = []
    for source in sources:
        source = parse_source(source) if isinstance(source, str) else source
        texts += [source.text] + ([source.control] if source.control else [])
    return list(dict.fromkeys(texts + ["pixels"]))


@torch.no_grad()
def cut_features(body: Body, inputs: torch.Tensor, device: torch.device) -> List[torch.Tensor]:
    """Features of ``inputs`` at every cut of the frozen ``body``, in one pass: what ``drop_top(k)`` would output.

    A body cut after group k ends in the tail (pooling for a backbone) as
    ``Body.drop_top`` keeps it; a body without groups (``pixels``) has one
    cut, its input.
    """
    if not body.groups:
        return [inputs]
    body = body.to(device).eval()
    top = len(body.groups)

    def every_cut(x):
        outs = []
        for k in range(top):
            x = body.forward_range(x, k, k + 1)  # the tail follows the top group
            outs.append((x if k + 1 == top else body.tail(x)).flatten(1).cpu())
        return torch.cat(outs, 1)

    return list(map_batches(every_cut, inputs, FEATURE_CHUNK, device=device).split(body.group_features, 1))


def probe_score(x: torch.Tensor, y: torch.Tensor, n_classes: int, seed: int) -> Optional[float]:
    """Stratified k-fold accuracy of the linear probe at ``C = FIXED_C`` on standardised ``x``; None below 2 per class.

    One strength instead of the ``C_GRID`` search ``--schedule linear`` runs:
    six times cheaper, and the ranking of candidates is what matters here.
    """
    counts = np.bincount(y.numpy(), minlength=n_classes)
    if counts[counts > 0].min() < 2:
        return None
    z = standardize(nn.BatchNorm1d(x.shape[1], affine=False), x.float()).double()
    return cross_validate(z, y, n_classes, [FIXED_C], seed)[1]


def measure(experiment: Experiment, text: str, raw: np.ndarray, y: torch.Tensor, seed: int) -> List[Candidate]:
    """Every cut of source ``text`` on the labeled rows ``raw``: features once, then both scores per cut."""
    started = time.perf_counter()
    source = experiment.bind(text)
    body = source.body(seed)
    features = cut_features(body, preprocess(body, raw), experiment.options.settings.device)
    shared = (time.perf_counter() - started) / len(features)
    names = body.group_names or ["input"]
    candidates = []
    for cut, x in enumerate(features, start=1 if body.groups else 0):
        begun = time.perf_counter()
        probe = probe_score(x, y, experiment.n_classes, seed)
        evidence = logme(x, y, experiment.n_classes)
        candidates.append(Candidate(text, kind_of(source), cut, len(body.groups), names[max(cut - 1, 0)], x.shape[1],
                                    probe, evidence, round(shared + time.perf_counter() - begun, 3),
                                    source.control))
    return candidates


def ranking(score: str):
    """The sort key of a candidate under ``score``: the score, ties broken by the other one."""
    if score == "probe":
        return lambda c: (c.probe, c.logme)
    return lambda c: (c.logme, c.probe if c.probe is not None else 0.0)


def mark_gains(candidates: List[Candidate], score: str) -> None:
    """Each pretrained candidate's ``gain``: its score minus its control's at the same cut."""
    by_cut = {(c.source, c.cut): c for c in candidates}
    for c in candidates:
        control = by_cut.get((c.control, c.cut))
        if control is not None and c.kind == "pretrained":
            c.gain = round(getattr(c, score) - getattr(control, score), 4)


def choose_schedule(best: Candidate, candidates: List[Candidate], large: bool):
    """``(schedule, unfreeze, scenario, why)`` for the top-ranked candidate (the table of the module docstring)."""
    size = "large" if large else "small"
    if best.kind == "pixels":
        return "linear", None, f"{size}, pixels first", "no body's features beat the inputs themselves"
    if best.kind == "control":
        schedule = "full" if large else "linear"
        return (schedule, None, f"{size} and different: the architecture from scratch",
                "the architecture with random weights scores above every pretrained cut")
    top = next(c for c in candidates if c.source == best.source and c.cut == c.groups)
    similar = top.gain is None or top.gain > 0
    scenario = f"{size} and {'similar' if similar else 'different'}"
    evidence = (f"top-layer features {'beat' if similar else 'do not beat'} the random architecture "
                f"({'no control' if top.gain is None else f'gain {top.gain:+.3f}'}); best cut {best.layer}")
    if not large:
        return "linear", None, scenario, f"few labels: a linear head on frozen features; {evidence}"
    if similar:
        return ("two-stage", best.cut, scenario,
                f"enough labels to fine-tune the body from pretrained weights; {evidence}")
    return "full", None, scenario, f"enough labels and different data: fine-tune everything; {evidence}"


def recommend(candidates: List[Candidate], score: str, per_class: float, data_args: List[str]) -> Dict:
    """The top candidate by ``score`` with its schedule, and the ``finetune`` arguments that run it."""
    best = max(candidates, key=ranking(score))
    schedule, unfreeze, scenario, why = choose_schedule(best, candidates, per_class >= LARGE_PER_CLASS)
    args = data_args[:1] + ["--from", best.source] + data_args[1:] + ["--schedule", schedule]
    args += ["--drop-top", str(best.drop_top)] if best.drop_top else []
    args += ["--unfreeze", str(unfreeze)] if unfreeze else []
    return {"source": best.source, "cut": best.cut, "layer": best.layer, "drop_top": best.drop_top,
            "schedule": schedule, "unfreeze": unfreeze, "args": args, "scenario": scenario, "why": why}


def advise(data, sources: Sequence[str], labels_per_class: Union[int, str], *, seed: int = 0,
           score: str = "logme", **options) -> Advice:
    """Measure every source (and its control, and ``pixels``) at every cut on one label sample; recommend one.

    ``data``: a data spec or a :class:`pretrain.data.specs.Dataset`; ``labels_per_class``: one budget;
    ``seed``: the label sample (as ``finetune --seed``); ``score``: what ranks the candidates,
    ``logme`` or ``probe`` (which needs 2 labels per class); ``options``: the fields of
    :class:`finetune.study.experiment.Options` that shape the body (device, split_seed, input_size, ...).
    """
    budget = single_budget(labels_per_class)
    if score not in ("probe", "logme"):
        raise LayerwiseError(f"score={score}: use logme, or probe (at least 2 labels per class)")
    experiment = Experiment(data, Options(**options))
    sample = experiment.sample(budget, seed)
    y = torch.from_numpy(experiment.y_train[sample].astype(np.int64))
    raw = experiment.x_train[sample]
    candidates = [c for text in candidate_sources(sources) for c in measure(experiment, text, raw, y, seed)]
    if score == "probe" and candidates[0].probe is None:
        raise LayerwiseError(f"score={score}: use logme, or probe (at least 2 labels per class)")
    mark_gains(candidates, score)
    return Advice(recommend(candidates, score, len(sample) / experiment.n_classes, data_args(experiment, budget, seed)),
                  candidates, score)


def data_args(experiment: Experiment, budget: Budget, seed: int) -> List[str]:
    """DATA and the options that reproduce the advisor's data, label sample and body inputs on the command line."""
    o, dataset = experiment.options, experiment.dataset
    args = [dataset.spec, "--labels-per-class", budget.label, "--seed", str(seed)]
    args += ["--split-seed", str(o.split_seed)] if o.split_seed else []
    args += ["--data-dir", o.data_dir] if o.data_dir else []
    args += ["--input-size", str(o.input_size)] if o.input_size else []
    return args + (["--adapt-first-conv"] if o.adapt_first_conv else [])


def write_advice(advice: Advice, out_dir) -> Path:
    """``advice.json`` in ``out_dir``: ``{"recommendation": ..., "score": ..., "candidates": [...]}``."""
    path = Path(out_dir, "advice.json")
    save_json(advice.to_dict(), path)
    return path
