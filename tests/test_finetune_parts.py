"""Tests for finetune's parts that need no pretrained stack: freezing, schedules, label budgets, heads, reports."""
import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from finetune.networks.body import Body
from finetune.study.budget import Budget, check_labeled, parse_budgets, sample_labels, validation_split
from finetune.networks.classifier import Classifier, build_head, parse_head
from finetune.training.freezing import freeze_to
from finetune.study.report import format_table, write_report
from finetune.training.schedule import make_stages
from finetune.training.train import TrainSettings, stage_optimizer
from pretrain.core.errors import LayerwiseError


def batchnorm_body(n_groups=3, width=8):
    """A body whose groups hold BatchNorm, as torchvision backbones do."""
    groups = [nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU()) for _ in range(n_groups)]
    return Body(groups, [width] * n_groups, torch.as_tensor, "bn-body")


# --- freezing -------------------------------------------------------------------------------

def test_freeze_to_counts_from_the_top_when_negative():
    body = batchnorm_body(4)
    freeze_to(body, -1)
    assert [all(p.requires_grad for p in g.parameters()) for g in body.groups] == [False, False, False, True]
    freeze_to(body, 1)
    assert [any(p.requires_grad for p in g.parameters()) for g in body.groups] == [False, True, True, True]
    with pytest.raises(LayerwiseError, match="has 4 layer groups"):
        freeze_to(body, 5)


def test_frozen_groups_stay_in_eval_and_their_batchnorm_statistics_do_not_move():
    body = freeze_to(batchnorm_body(3), 2)
    body.train()
    assert [g.training for g in body.groups] == [False, False, True]
    frozen_stats = body.groups[0][1].running_mean.clone()
    trained_stats = body.groups[2][1].running_mean.clone()
    body(torch.randn(32, 8) * 3 + 1)
    assert torch.equal(body.groups[0][1].running_mean, frozen_stats)
    assert not torch.equal(body.groups[2][1].running_mean, trained_stats)
    freeze_to(body, 0)  # unfreezing in train mode puts the groups back in train mode
    assert all(g.training for g in body.groups)


def test_forward_range_composes_to_forward():
    body = batchnorm_body(3).eval()
    x = torch.randn(5, 8)
    for k in range(4):
        assert torch.allclose(body.forward_range(body.forward_range(x, 0, k), k), body(x))


# --- schedules and discriminative rates ----------------------------------------------------

def test_schedules_as_stages():
    assert [s.frozen for s in make_stages("linear", 3)] == [3]
    assert [s.frozen for s in make_stages("two-stage", 3)] == [3, 0]
    assert [s.frozen for s in make_stages("two-stage", 3, unfreeze=1)] == [3, 2]
    assert [s.frozen for s in make_stages("full", 3)] == [0]
    assert [s.frozen for s in make_stages("gradual", 3)] == [3, 2, 1, 0]
    with pytest.raises(LayerwiseError, match="use one of linear, two-stage, full, gradual"):
        make_stages("warmup", 3)
    with pytest.raises(LayerwiseError, match="unfreeze=4: the body has 3 layer groups"):
        make_stages("two-stage", 3, unfreeze=4)


def test_discriminative_rates_land_in_the_optimizer():
    body = batchnorm_body(3)
    model = Classifier(body, build_head({"kind": "linear"}, 8, 4), {"kind": "linear"}, list("abcd"))
    stage = make_stages("two-stage", 3, unfreeze=2, body_lr_scale=0.1, lr_decay=0.5)[1]
    optimizer = stage_optimizer(model, stage, TrainSettings(lr=0.01))
    rates = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert rates == pytest.approx({"head": 0.01, "group3": 0.001, "group2": 0.0005})
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer.isdisjoint(id(p) for p in body.groups[0].parameters())
    assert {id(p) for p in body.groups[2].parameters()} <= in_optimizer
    full = stage_optimizer(model, make_stages("full", 3)[0], TrainSettings(lr=0.01))
    assert {group["lr"] for group in full.param_groups} == {0.01}


# --- label budgets ----------------------------------------------------------------------------

def labels_of(counts):
    """Shuffled labels with ``counts[c]`` examples of class c."""
    y = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    return np.random.default_rng(0).permutation(y)


def test_per_class_sample_is_stratified_and_reproducible():
    y = labels_of([30, 50, 20])
    sample = sample_labels(y, Budget(per_class=7), seed=3)
    assert np.bincount(y[sample]).tolist() == [7, 7, 7] and len(set(sample)) == 21
    assert np.array_equal(sample, sample_labels(y, Budget(per_class=7), seed=3))
    assert not np.array_equal(sample, sample_labels(y, Budget(per_class=7), seed=4))
    assert np.array_equal(sample_labels(y, Budget(), seed=0), np.arange(100))  # all


def test_total_budget_is_spread_in_proportion():
    y = labels_of([300, 500, 200])
    sample = sample_labels(y, Budget(total=100), seed=0)
    assert np.bincount(y[sample]).tolist() == [30, 50, 20]


@pytest.mark.parametrize("budget, message", [
    (Budget(per_class=21), "labels_per_class=21: class 2 has only 20 labeled training examples; use at most 20"),
    (Budget(total=101), "labels=101: there are only 100 labeled training examples"),
    (Budget(total=2), "at least one label per class"),
])
def test_budgets_larger_than_the_data_are_refused(budget, message):
    with pytest.raises(LayerwiseError, match=message):
        sample_labels(labels_of([30, 50, 20]), budget, seed=0)


def test_parse_budgets():
    assert parse_budgets("1,10,all") == [Budget(per_class=1), Budget(per_class=10), Budget()]
    assert parse_budgets(None, "100") == [Budget(total=100)]
    assert Budget(total=100).labels_per_class(10) == 10 and Budget().label == "all"
    for text in ("0", "1,x", "-3"):
        with pytest.raises(LayerwiseError, match="comma-separated positive counts"):
            parse_budgets(text)


def test_validation_slice_only_from_five_labels_per_class():
    y = labels_of([10, 10, 5])
    fit, val = validation_split(y, seed=0)
    assert np.bincount(y[val]).tolist() == [2, 2, 1]
    assert np.array_equal(np.sort(np.concatenate([fit, val])), np.arange(25))
    fit, val = validation_split(labels_of([10, 10, 4]), seed=0)
    assert len(val) == 0 and len(fit) == 24


def test_unlabeled_data_cannot_be_fine_tuned():
    data = SimpleNamespace(spec="npz:x.npz", x_train=np.zeros((4, 2)), y_train=None)
    with pytest.raises(LayerwiseError, match="fine-tuning needs labels"):
        check_labeled(data)


# --- heads ----------------------------------------------------------------------------------

def test_parse_head():
    assert parse_head("linear") == {"kind": "linear"}
    assert parse_head("mlp:256,dropout=0.5") == {"kind": "mlp", "hidden": 256, "dropout": 0.5}
    head = build_head(parse_head("mlp:16"), 8, 3)
    assert head(torch.randn(4, 8)).shape == (4, 3)
    for text in ("mlp", "mlp:x", "mlp:16,drop=0.2", "mlp:16,dropout=1.5", "conv"):
        with pytest.raises(LayerwiseError, match="use linear or mlp:HIDDEN"):
            parse_head(text)


# --- reports --------------------------------------------------------------------------------

def fake_rows():
    """Rows as compare returns them: two sources, two budgets (one of them `all`), two seeds."""
    rows = []
    for source, base in (("runs/dbn", 0.8), ("random:runs/dbn", 0.6)):
        for budget, labels, gain in ((1, 10, 0.0), ("all", 1437, 0.15)):
            for seed, noise in ((0, -0.01), (1, 0.01)):
                rows.append({"source": source, "schedule": "two-stage", "labels_per_class": budget, "labels": labels,
                             "n_classes": 10, "seed": seed, "test_accuracy": base + gain + noise, "macro_f1": base + gain,
                             "train_seconds": 0.5, "epochs": 10})
    return rows


def test_table_shows_mean_and_std_over_seeds():
    table = format_table(fake_rows())
    assert "over 2 seeds" in table
    line = next(line for line in table.splitlines() if line.startswith("random:runs/dbn"))
    assert "0.600 ± 0.014" in line and "0.750 ± 0.014" in line  # std of (-0.01, +0.01), ddof=1


def test_paired_gap_to_the_control_with_a_95_interval():
    rows = fake_rows()
    for row in rows:  # the control's seeds move differently: paired differences 0.18 and 0.24 at each budget
        if row["source"] == "random:runs/dbn":
            row["test_accuracy"] += 0.02 if row["seed"] == 0 else -0.04
    table = format_table(rows)
    line = next(line for line in table.splitlines() if line.startswith("runs/dbn - random:runs/dbn"))
    # mean 0.21; t(0.975, 1) = 12.706, sd 0.0424 / sqrt(2) -> half-width 0.381
    assert "+0.210 [-0.171, +0.591]" in line


def test_a_gap_from_one_seed_is_not_printed_as_an_interval():
    rows = [row for row in fake_rows() if row["seed"] == 0]
    line = next(line for line in format_table(rows).splitlines() if line.startswith("runs/dbn - random:runs/dbn"))
    assert "+0.200 (one seed: no interval)" in line and "[" not in line


def test_report_files_exist_and_parse(tmp_path):
    paths = write_report(fake_rows(), tmp_path)
    assert sorted(p.name for p in paths) == ["learning_curves.png", "results.csv", "results.json", "results.md"]
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert len(rows) == 8 and rows[0]["source"] == "runs/dbn"
    assert {"source", "schedule", "labels_per_class", "seed", "test_accuracy", "macro_f1",
            "train_seconds"} <= set(rows[0])
    with open(tmp_path / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 8
    assert "| random:runs/dbn | two-stage |" in (tmp_path / "results.md").read_text()
    import matplotlib.image
    image = matplotlib.image.imread(tmp_path / "learning_curves.png")
    assert image.shape[0] >= 500 and image.shape[1] >= 800
