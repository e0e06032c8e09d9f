"""Fine-tuning under torchrun: the cells of a comparison spread over the processes, rank 0 reporting."""
import json

import pretrain
from launch import run_ranks
from finetune import compare


def test_two_processes_share_the_cells_and_rank_0_reports_the_rows_of_one(tmp_path):
    stack = tmp_path / "dbn"
    pretrain.pretrain_stack("digits", ["rbm:16", "rbm:8"], out=stack, epochs=2, progress=False)
    grid = ["--from", str(stack), "--from", f"random:{stack}", "--schedule", "linear", "--labels-per-class", "2,5",
            "--seeds", "2", "--epochs", "2", "--threads", "1"]
    results = run_ranks("finetune", ["digits", *grid, "--report", str(tmp_path / "r")])
    assert [code for code, _, _ in results] == [0, 0], results
    assert "test accuracy" in results[0][1] and results[1][1] == "", results  # rank 0 alone prints
    saved = json.loads((tmp_path / "r" / "results.json").read_text())
    assert saved["config"]["world_size"] == 2
    alone = compare("digits", [str(stack), f"random:{stack}"], ["linear"], "2,5", seeds=2, epochs=2, progress=False)
    keys = ("source", "schedule", "labels_per_class", "seed", "test_accuracy", "macro_f1")
    assert [{k: r[k] for k in keys} for r in saved["rows"]] == [{k: r[k] for k in keys} for r in alone]
