"""The answer to "does pretraining help with my few labels?": a table, JSON/CSV/Markdown and a plot.

Rows (one per fine-tuned model) are summarised per source, schedule and
budget as mean ± standard deviation over seeds (sample std, ddof=1).
"""
import csv
import io
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from pretrain.io import save_json

FIELDS = ("source", "schedule", "labels_per_class", "labels", "seed", "test_accuracy", "macro_f1",
          "train_seconds", "epochs")
# In the plot a source keeps its colour and a schedule its line style and marker.
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D")


def budget_x(row: Dict, n_classes: int) -> float:
    """Where a row's budget sits on the labels-per-class axis: ``all`` at its real mean count per class."""
    value = row["labels_per_class"]
    return row["labels"] / n_classes if value == "all" else float(value)


def budget_name(value) -> str:
    """``10`` -> ``10``, ``2.5`` -> ``2.5``, ``all`` -> ``all``."""
    return value if isinstance(value, str) else f"{value:g}"


def summarize(rows: Sequence[Dict], metric: str) -> Dict[Tuple[str, str], Dict]:
    """``{(source, schedule): {labels_per_class: (mean, std)}}``, in the order rows came."""
    values: Dict[Tuple[str, str], Dict] = {}
    for row in rows:
        cell = values.setdefault((row["source"], row["schedule"]), {})
        cell.setdefault(row["labels_per_class"], []).append(row[metric])
    return {line: {budget: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0)
                   for budget, v in cells.items()}
            for line, cells in values.items()}


def seeds_note(rows: Sequence[Dict]) -> str:
    """``mean ± std over 3 seeds``."""
    seeds = len({row["seed"] for row in rows})
    return f"mean ± std over {seeds} seed{'s' if seeds > 1 else ''}"


def _budgets(rows: Sequence[Dict], n_classes: int) -> List:
    """The budgets present, smallest first."""
    x = {row["labels_per_class"]: budget_x(row, n_classes) for row in rows}
    return sorted(x, key=x.get)


def _table_cells(rows: Sequence[Dict], n_classes: int, metric: str) -> Tuple[List[str], List[List[str]]]:
    """Header and body of the source x schedule by budget table of ``metric``."""
    budgets = _budgets(rows, n_classes)
    header = ["source", "schedule"] + [f"{budget_name(b)}/class" if b != "all" else "all" for b in budgets]
    lines = []
    for (source, schedule), cells in summarize(rows, metric).items():
        shown = [f"{cells[b][0]:.3f} ± {cells[b][1]:.3f}" if b in cells else "-" for b in budgets]
        lines.append([source, schedule, *shown])
    return header, lines


def format_table(rows: Sequence[Dict], n_classes: int, metric: str = "test_accuracy") -> str:
    """Plain-text table for the terminal: one line per source and schedule, one column per budget."""
    header, lines = _table_cells(rows, n_classes, metric)
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    text = [f"{metric.replace('_', ' ')}, {seeds_note(rows)}"]
    text += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in [header, *lines]]
    return "\n".join(text)


def format_markdown(rows: Sequence[Dict], n_classes: int) -> str:
    """``results.md``: test accuracy and macro F1 tables (mean ± std over seeds)."""
    parts = ["# Fine-tuning with few labels\n"]
    for metric, title in (("test_accuracy", "Test accuracy"), ("macro_f1", "Macro F1")):
        header, lines = _table_cells(rows, n_classes, metric)
        parts.append(f"## {title} ({seeds_note(rows)})\n")
        parts.append("| " + " | ".join(header) + " |")
        parts.append("|" + "---|" * len(header))
        parts += ["| " + " | ".join(line) + " |" for line in lines]
        parts.append("")
    return "\n".join(parts)


def format_csv(rows: Sequence[Dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def plot_learning_curves(rows: Sequence[Dict], path, n_classes: int) -> Path:
    """Test accuracy against labels per class (log axis), one line per source and schedule, std error bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = _budgets(rows, n_classes)
    where = {row["labels_per_class"]: budget_x(row, n_classes) for row in rows}
    lines = summarize(rows, "test_accuracy")
    sources = list(dict.fromkeys(source for source, _ in lines))
    schedules = list(dict.fromkeys(schedule for _, schedule in lines))
    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    for index, ((source, schedule), cells) in enumerate(lines.items()):
        shown = [b for b in budgets if b in cells]
        # Nudge each line sideways (in log units) so error bars at one budget do not hide each other.
        nudge = 10 ** (0.012 * (index - (len(lines) - 1) / 2))
        style = schedules.index(schedule)
        ax.errorbar([where[b] * nudge for b in shown], [cells[b][0] for b in shown],
                    yerr=[cells[b][1] for b in shown], color=f"C{sources.index(source) % 10}",
                    linestyle=LINESTYLES[style % len(LINESTYLES)], marker=MARKERS[style % len(MARKERS)],
                    markersize=7, linewidth=2, capsize=5, label=f"{source} · {schedule}")
    ax.set_xscale("log")
    ax.set_xticks([where[b] for b in budgets])
    ax.set_xticklabels([f"all\n(~{where[b]:.0f})" if b == "all" else budget_name(b) for b in budgets])
    ax.minorticks_off()
    ax.set_title(f"Test accuracy vs. labels per class ({seeds_note(rows)})", fontsize=14)
    ax.set_xlabel("labeled examples per class (log scale)", fontsize=13)
    ax.set_ylabel("test accuracy", fontsize=13)
    ax.tick_params(labelsize=12)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=11, loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(rows: Sequence[Dict], out_dir, n_classes: int) -> List[Path]:
    """Write ``results.json``, ``results.csv``, ``results.md`` and ``learning_curves.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_json({"rows": list(rows)}, out / "results.json")
    (out / "results.csv").write_text(format_csv(rows))
    (out / "results.md").write_text(format_markdown(rows, n_classes))
    return [out / "results.json", out / "results.csv", out / "results.md",
            plot_learning_curves(rows, out / "learning_curves.png", n_classes)]
