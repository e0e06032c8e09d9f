"""``finetune``'s settings, declared once (the mechanism: :mod:`pretrain.settings`).

:class:`FinetuneSettings` is how one model is fine-tuned (the library's
:class:`finetune.study.experiment.Options` and ``TrainSettings`` take their
defaults from it); :class:`StudyGrid` is what the comparison repeats it over
(``compare``'s defaults). The command's click options derive their flags,
defaults, help and ranges from both; ``tests/test_settings.py`` compares them.
Torch-free: the command imports it before ``--help``.
"""
from dataclasses import dataclass
from typing import Optional

from pretrain.settings import CommonSettings, setting

from .training.schedule import AUGMENTS, SCHEDULE_REGISTRY, SCHEDULES, SEMI_METHODS


@dataclass
class FinetuneSettings(CommonSettings):
    """How one body is fine-tuned with a new head."""

    head: str = setting("linear", "The classifier head.")
    drop_top: int = setting(0, "Remove the top K layer groups of the body before the head goes on.", low=0)
    unfreeze: Optional[int] = setting(None, "Top groups unfrozen by two-stage and gradual  [default: all]", low=1)
    body_lr_scale: float = setting(0.1, "Top body group's learning rate as a fraction of the head's.", low=0,
                                   low_open=True)
    lr_decay: float = setting(1.0, "Learning-rate factor per group further down the body (1: all at the same "
                                   "rate).", low=0, low_open=True)
    lr: float = setting(1e-3, "The head's learning rate (Adam).", low=0, low_open=True)
    epochs: int = setting(100, "Most epochs per stage (early stopping ends sooner); a stage still takes its fewest "
                               "optimizer steps, and under --semi runs its own length (see --semi).", low=1)
    batch_size: int = setting(64, "Labeled examples per optimizer step (at least 2: BatchNorm needs two to "
                                  "normalise).", low=2)
    input_size: Optional[int] = setting(None, "Resize images to N x N for torchvision backbones.", low=1)
    adapt_first_conv: bool = setting(False, "Torchvision backbones: sum the first convolution over RGB for "
                                            "grayscale input.")
    jobs: int = setting(1, "Processes for the cells of the comparison (this one and N-1 workers), each with its "
                           "share of the cores (the numbers are those of --jobs 1).", low=1)
    semi: str = setting("none", "Use the unlabeled training images while fine-tuning: pseudo-label (Lee 2013: the "
                                "model's own predictions as targets, dropout in the body), reconstruction (each "
                                "trained layer keeps reconstructing its input through its pretrained decoder; "
                                "stacks, schedules that train the body) or consistency (FixMatch, images: "
                                "confident predictions on a weakly shifted image are the targets of a strongly "
                                "perturbed one). A --semi stage runs the weight's ramp and the fewest steps after "
                                "it, whatever --epochs says (one that trains the body that long and no longer).",
                        choices=SEMI_METHODS)
    semi_weight: Optional[float] = setting(None, "Final weight of the unlabeled term  [default: 1; 3 for "
                                                 "reconstruction]", low=0)
    augment: str = setting("none", "Transform the labeled images of each training batch: shift (small random "
                                   "translations) or crop-flip (random crops and horizontal flips, for natural "
                                   "images); never test images.", choices=AUGMENTS)


@dataclass
class StudyGrid:
    """What a comparison repeats the fine-tuning over: schedules, label budgets and seeds."""

    schedule: str = setting("two-stage", "; ".join(f"{name}: {entry.help}" for name, entry in
                                                    SCHEDULE_REGISTRY.items()) + "; repeat to compare.",
                            choices=SCHEDULES)
    labels_per_class: Optional[str] = setting(None, "Label budgets per class, e.g. 1,10,100,all  [default: "
                                                    "1,10,100 unless --labels]")
    labels: Optional[str] = setting(None, "Label budgets in total, stratified over the classes.")
    seeds: int = setting(1, "Repeats of every cell, each with its own label sample and initialisation.", low=1)
    seed: int = setting(0, "The first seed (seeds are SEED, SEED+1, ...).", low=0)


#: the defaults, as the library's keyword arguments take them
FINETUNE, GRID = FinetuneSettings(), StudyGrid()
