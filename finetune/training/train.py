"""The one training loop: stages of a schedule, each on features of its frozen bottom computed once.

For every stage the frozen bottom groups run ONCE over the labeled sample (in
eval mode, no autograd) and their outputs are cached; only the groups above
and the head run per batch. With ``linear`` and the first stage of
``two-stage`` and ``gradual`` the whole body is frozen, so a stage costs only the head.
Under ``--augment`` (:mod:`.augment`) a stage that trains sees transformed images, so its
frozen groups run per batch instead; the probe still fits cached, untransformed features.

A ``linear`` head on a wholly frozen body (the probe) is a logistic
regression on cached features: it is fitted to convergence by full-batch
L-BFGS with its L2 strength cross-validated (:mod:`finetune.training.probe`), as
scikit-learn's ``LogisticRegression`` would fit it. Under the ``linear``
schedule nothing else would use the validation slice, so the probe fits on
every labeled row.

Every other stage (an ``mlp`` head, or body groups that train) minimises the
cross-entropy with Adam over mini-batches drawn from a shuffled permutation.
With a validation slice it keeps the weights of the best validation score
(accuracy, ties broken by loss), counting the state the stage started from,
and stops after ``patience`` epochs without improvement; without one it runs
a fixed number of epochs. Either way a stage takes at least ``min_steps``
optimizer steps, so ten labels still get trained on.

A schedule that fine-tunes the body after a head stage (``two-stage``,
``gradual``) never ends below that head stage on the validation slice: the
whole model after the head stage is kept aside, and it is restored when the
fine-tuned model does not score higher. The last stage's history records
which was kept (``"kept": "head"`` or ``"fine-tuned"``). A kept linear head
is then refitted on every labeled row (``"refit"``): the validation slice has
done its work, as scikit-learn's ``GridSearchCV`` refits its winner. Without
a validation slice (fewer than 5 labels per class) nothing can tell them
apart, and the fine-tuned model, the schedule asked for, is kept: measured
at 1 label per class it was within noise of the head (see the report of issue 13).
"""
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pretrain.core.batches import map_batches
from pretrain.core.progress import progress_bar
from pretrain.training.adam import Adam

from ..networks.classifier import Classifier
from ..settings import FINETUNE
from .divergence import check_epoch, check_model
from .freezing import freeze_to
from .probe import fit_linear_head
from .schedule import Stage, param_groups
from .semi import SemiTerm

Split = Tuple[torch.Tensor, torch.Tensor]


@dataclass
class TrainSettings:
    """Optimisation settings shared by every stage (the rates of body groups follow from ``lr``)."""

    lr: float = FINETUNE.lr
    #: most epochs per stage (early stopping usually ends it sooner)
    epochs: int = FINETUNE.epochs
    batch_size: int = FINETUNE.batch_size
    #: fewest optimizer steps per stage, however few the labels
    min_steps: int = 300
    #: epochs without a better validation score before a stage stops
    patience: int = 20
    device: torch.device = torch.device("cpu")
    progress: bool = False
    #: per-image transforms of the labeled batches that train (:mod:`finetune.training.augment`); None: off
    augment: Optional[Callable[[torch.Tensor], torch.Tensor]] = None


@torch.no_grad()
def run_bottom(model: Classifier, x: torch.Tensor, stop: int, device: torch.device) -> torch.Tensor:
    """Outputs of the body's groups below ``stop`` for inputs ``x``, computed once in eval mode, on ``device``."""
    if stop == 0:
        return x.to(device)
    model.body.eval()
    return map_batches(lambda chunk: model.body.forward_range(chunk, 0, stop), x, model.body.chunk_rows,
                       device=device)


@torch.no_grad()
def frozen_bottom(model: Classifier, x: torch.Tensor, stop: int) -> torch.Tensor:
    """The outputs of the frozen groups below ``stop`` for one batch (they are in eval mode)."""
    return model.body.forward_range(x, 0, stop) if stop else x


def logits_of(forward: Callable, x: torch.Tensor, device: torch.device, batch_size: int) -> torch.Tensor:
    """``forward`` over ``x`` in chunks of ``batch_size`` rows, no autograd."""
    return map_batches(forward, x, batch_size, device=device)


def score(model: Classifier, forward: Callable, val: Split, device: torch.device) -> Tuple[float, float]:
    """(accuracy, -loss) on the validation slice: larger is better."""
    model.eval()
    logits = logits_of(forward, val[0], device, model.body.chunk_rows)
    labels = val[1].to(device)
    return float((logits.argmax(1) == labels).float().mean()), -float(F.cross_entropy(logits, labels))


def trainable_state(modules: nn.Module) -> Dict[str, torch.Tensor]:
    """A copy of the weights and buffers (BatchNorm statistics too) of what a stage trains."""
    return {k: v.detach().clone() for k, v in modules.state_dict().items()}


def stage_optimizer(model: Classifier, stage: Stage, settings: TrainSettings,
                    semi: Optional[SemiTerm] = None) -> Adam:
    """Adam over the head and the stage's trainable groups at their discriminative rates (and ``semi``'s decoders)."""
    groups = param_groups(model.body, model.head, stage, settings.lr)
    if semi is not None:
        groups += semi.param_groups(model, stage.frozen, settings.lr * stage.body_lr_scale)
    return Adam(groups)  # torch.optim.Adam's step, without the import of torch._dynamo (pretrain.training.adam)


def is_probe(model: Classifier, stage: Stage) -> bool:
    """Whether ``stage`` trains only a linear head on the wholly frozen body: a logistic regression."""
    return stage.frozen == len(model.body.groups) and model.head_config["kind"] == "linear"


def probe_stage(model: Classifier, stage: Stage, fit: Split, val: Optional[Split],
                settings: TrainSettings) -> Dict[str, float]:
    """Fit the linear head to convergence on the body's features, computed once (see :mod:`finetune.training.probe`)."""
    device = settings.device
    freeze_to(model.body, stage.frozen)
    features = run_bottom(model, fit[0], stage.frozen, device)
    result = fit_linear_head(model.head, features, fit[1], len(model.classes_))
    model.eval()
    val_accuracy = None
    if val is not None:
        val_accuracy = score(model, model.head, (run_bottom(model, val[0], stage.frozen, device), val[1]), device)[0]
    return {"stage": stage.name, "epochs": 0, "steps": result.iterations, "val_accuracy": val_accuracy,
            "C": result.C, "C_chosen_by": result.chosen_by, "cv_accuracy": result.cv_accuracy}


def step_loss(model: Classifier, forward: Callable, x: torch.Tensor, y: torch.Tensor, stage: Stage,
              semi: Optional[SemiTerm], step: int) -> torch.Tensor:
    """The loss of one optimizer step: the cross-entropy of the labeled batch, with ``semi``'s unlabeled term."""
    if semi is None:
        return F.cross_entropy(forward(x), y)
    return semi.loss(model, stage.frozen, x, y, step)


def train_stage(model: Classifier, stage: Stage, fit: Split, val: Optional[Split],
                settings: TrainSettings, desc: str, semi: Optional[SemiTerm] = None) -> Dict[str, float]:
    """Train ``stage`` on preprocessed inputs; returns what happened (epochs, steps, best validation score).

    With ``semi`` every step adds its unlabeled term (:mod:`finetune.training.semi`), and a linear head on the frozen
    body trains by Adam from where it is instead of being fitted by the probe. A ``semi`` stage that trains
    body groups runs ``semi.min_steps`` steps (whole epochs) and keeps its last weights, as Lee trains for a
    fixed schedule: on a validation slice of one or two labels per class, early stopping kept the state the
    stage started from and the unlabeled term never counted (see :mod:`finetune.training.semi`).
    """
    if is_probe(model, stage) and semi is None:
        return probe_stage(model, stage, fit, val, settings)
    device = settings.device
    freeze_to(model.body, stage.frozen)
    augment = settings.augment
    # Augmented images pass through the frozen groups batch by batch; otherwise their outputs are cached once.
    x_fit, y_fit = fit[0].to(device) if augment else run_bottom(model, fit[0], stage.frozen, device), fit[1].to(device)
    val = (run_bottom(model, val[0], stage.frozen, device), val[1]) if val is not None else None

    def forward(features):
        return model.head(model.body.forward_range(features, stage.frozen))

    trained = nn.ModuleList([*list(model.body.groups)[stage.frozen:], model.head])
    optimizer = stage_optimizer(model, stage, settings, semi)
    steps_per_epoch = math.ceil(len(x_fit) / settings.batch_size)
    min_epochs = math.ceil((semi.min_steps(settings.min_steps) if semi else settings.min_steps) / steps_per_epoch)
    best, best_state, stale, steps, epoch, loss = None, None, 0, 0, 0, None
    last = semi is not None and stage.frozen < len(model.body.groups)  # a semi stage training the body runs its length
    if val is not None and not last:
        best, best_state = score(model, forward, val, device), trainable_state(trained)
    epochs = min_epochs if last else max(settings.epochs, min_epochs)
    bar = progress_bar(range(epochs), settings.progress, desc=desc, leave=False, unit="epoch")
    for epoch in bar:
        model.train()
        order = torch.randperm(len(x_fit)).to(device)
        for start in range(0, len(x_fit), settings.batch_size):
            batch = order[start:start + settings.batch_size]
            if len(batch) == 1 < len(x_fit):
                continue  # a lone example would break BatchNorm; it is drawn into another batch next epoch
            optimizer.zero_grad(set_to_none=True)
            inputs = x_fit[batch] if augment is None else frozen_bottom(model, augment(x_fit[batch]), stage.frozen)
            loss = step_loss(model, forward, inputs, y_fit[batch], stage, semi, steps)
            loss.backward()
            optimizer.step()
            steps += 1
        check_epoch(model, loss, settings.lr, f"{desc}, epoch {epoch + 1}")
        if val is None or last:
            continue
        current = score(model, forward, val, device)
        if current > best:
            best, best_state, stale = current, trainable_state(trained), 0
        else:
            stale += 1
        bar.set_postfix(val_acc=f"{best[0]:.3f}")
        if stale >= settings.patience and epoch + 1 >= min_epochs:
            break
    if best_state is not None:
        trained.load_state_dict(best_state)
    return {"stage": stage.name, "epochs": epoch + 1, "steps": steps,
            "val_accuracy": best[0] if best else None}


def train_classifier(model: Classifier, stages: List[Stage], fit: Split, val: Optional[Split],
                     settings: TrainSettings, desc: str = "",
                     semi: Optional[SemiTerm] = None) -> List[Dict[str, float]]:
    """Run the stages of a schedule in order; the model ends in eval mode with its best weights.

    A head stage followed by others is kept when the fine-tuned model does not score higher on ``val``;
    under ``linear`` a probe fits on ``fit`` and ``val`` together (nothing else would use ``val``), unless
    ``semi`` trains on from the probe: then ``val`` picks the better of the probe and what follows.
    Probe stages are fitted without ``semi``; every other stage trains with it. A stage that diverges, or a
    trained model that is not finite, ends in one line naming a lower rate (:mod:`.divergence`).
    """
    model.to(settings.device)
    if semi is not None:
        semi.decoders.to(settings.device)
    alone = len(stages) == 1 and is_probe(model, stages[0])
    if val is not None and alone and semi is None:
        fit, val = join(fit, val), None
    head_first = len(stages) > 1 and stages[0].frozen == len(model.body.groups)
    history, head_only = [], None
    for index, stage in enumerate(stages):
        name = f"{desc} {stage.name}".strip()
        probe = is_probe(model, stage)
        history.append(train_stage(model, stage, fit, val, settings, name, None if probe else semi))
        if alone and semi is not None:  # linear: the probe, then Adam on from it with the unlabeled term
            history.append(train_stage(model, stage, fit, val, settings, f"{name} {semi.name}", semi))
        if index == 0 and head_first and val is not None:
            head_only = score(model, model, val, settings.device), trainable_state(model)
    if head_first:
        history[-1]["kept"] = keep_better(model, head_only, val, settings.device)
        if history[-1]["kept"] == "head" and val is not None and is_probe(model, stages[0]):
            history[-1]["refit"] = probe_stage(model, stages[0], join(fit, val), None, settings)
    model.eval()
    check_model(model, settings.lr, desc or "the trained model")
    return history


def join(first: Split, second: Split) -> Split:
    """The rows of both splits."""
    return torch.cat([first[0], second[0]]), torch.cat([first[1], second[1]])


def keep_better(model: Classifier, head_only: Optional[tuple], val: Optional[Split], device: torch.device) -> str:
    """``head`` (restoring its state) when the fine-tuned ``model`` scores no higher on ``val``; else ``fine-tuned``."""
    if head_only is None:  # no validation slice (see the module docstring)
        return "fine-tuned"
    head_score, head_state = head_only
    if score(model, model, val, device) > head_score:
        return "fine-tuned"
    model.load_state_dict(head_state)
    return "head"


def test_metrics(model: Classifier, x: torch.Tensor, y: np.ndarray, n_classes: int,
             device: torch.device) -> Dict[str, float]:
    """Test accuracy and macro-averaged F1 of preprocessed inputs ``x`` with labels ``y``."""
    from sklearn.metrics import f1_score
    model.eval()
    predicted = logits_of(model, x, device, model.body.chunk_rows).argmax(1).cpu().numpy()
    return {"test_accuracy": float(np.mean(predicted == y)),
            "macro_f1": float(f1_score(y, predicted, labels=np.arange(n_classes), average="macro", zero_division=0))}
