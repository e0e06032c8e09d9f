"""The answer to "does pretraining help with my few labels?": tables, JSON/CSV/Markdown and a plot.

Rows (one per fine-tuned model, each carrying its ``n_classes``) are
summarised per source, schedule (with its semi-supervised method) and budget as mean ± standard deviation over
seeds (sample std, ddof=1). Each source that has a control among the sources
(``random:STACK_DIR`` for ``STACK_DIR``, ``torchvision:NAME@none`` for an
ImageNet backbone) also gets its **paired gap**: per seed, its accuracy minus
the control's on the same label sample, with the mean and a 95% Student-t
interval over seeds, ``mean ± t(0.975, n-1) * sd / sqrt(n)``.
"""
import csv
import io
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from pretrain.core.io import save_json, save_text

FIELDS = ("source", "schedule", "semi", "semi_weight", "labels_per_class", "labels", "n_classes", "seed",
          "test_accuracy", "macro_f1", "train_seconds", "epochs", "C", "kept")
# In the plot a source keeps its colour and a schedule its line style and marker.
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D")


def budget_x(row: Dict) -> float:
    """Where a row's budget sits on the labels-per-class axis: ``all`` at its real mean count per class."""
    value = row["labels_per_class"]
    return row["labels"] / row["n_classes"] if value == "all" else float(value)


def budget_name(value) -> str:
    """``10`` -> ``10``, ``2.5`` -> ``2.5``, ``all`` -> ``all``."""
    return value if isinstance(value, str) else f"{value:g}"


def method(row: Dict) -> str:
    """A row's schedule, with its semi-supervised method when it has one: ``two-stage + pseudo-label``."""
    semi = row.get("semi", "none")
    return row["schedule"] if semi == "none" else f"{row['schedule']} + {semi}"


def summarize(rows: Sequence[Dict], metric: str) -> Dict[Tuple[str, str], Dict]:
    """``{(source, method): {labels_per_class: (mean, std)}}``, in the order rows came (see :func:`method`)."""
    values: Dict[Tuple[str, str], Dict] = {}
    for row in rows:
        cell = values.setdefault((row["source"], method(row)), {})
        cell.setdefault(row["labels_per_class"], []).append(row[metric])
    return {line: {budget: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0)
                   for budget, v in cells.items()}
            for line, cells in values.items()}


def control_of(source: str) -> Optional[str]:
    """The ``--from`` value of ``source``'s architecture from random weights, if it has one."""
    from ..networks.sources import parse_source
    return parse_source(source).control


def paired_gaps(rows: Sequence[Dict], metric: str = "test_accuracy") -> Dict[Tuple[str, str], Dict]:
    """``{(source, schedule): {budget: (mean gap, low, high, n)}}`` against each source's control.

    Pairs are rows of the same schedule and method, budget and seed (the same label
    sample); the interval is Student's t at 95% over the paired differences
    (no interval, low = high = mean, from a single seed).
    """
    from scipy import stats
    by_key = {(r["source"], method(r), r["labels_per_class"], r["seed"]): r[metric] for r in rows}
    sources = {r["source"] for r in rows}
    gaps: Dict[Tuple[str, str], Dict] = {}
    for (source, schedule, budget, seed), value in by_key.items():
        control = control_of(source)
        if control in sources and (control, schedule, budget, seed) in by_key:
            cell = gaps.setdefault((source, schedule), {}).setdefault(budget, [])
            cell.append(value - by_key[control, schedule, budget, seed])
    summary = {}
    for line, cells in gaps.items():
        summary[line] = {}
        for budget, diffs in cells.items():
            mean, n = float(np.mean(diffs)), len(diffs)
            half = float(stats.t.ppf(0.975, n - 1) * np.std(diffs, ddof=1) / np.sqrt(n)) if n > 1 else 0.0
            summary[line][budget] = (mean, mean - half, mean + half, n)
    return summary


def seeds_note(rows: Sequence[Dict]) -> str:
    """``mean ± std over 3 seeds``."""
    seeds = len({row["seed"] for row in rows})
    return f"mean ± std over {seeds} seed{'s' if seeds > 1 else ''}"


def _budgets(rows: Sequence[Dict]) -> List:
    """The budgets present, smallest first."""
    x = {row["labels_per_class"]: budget_x(row) for row in rows}
    return sorted(x, key=x.get)


def _header(rows: Sequence[Dict]) -> List[str]:
    return ["source", "schedule"] + [f"{budget_name(b)}/class" if b != "all" else "all" for b in _budgets(rows)]


def _table_cells(rows: Sequence[Dict], metric: str) -> Tuple[List[str], List[List[str]]]:
    """Header and body of the source x schedule by budget table of ``metric``."""
    budgets = _budgets(rows)
    lines = []
    for (source, schedule), cells in summarize(rows, metric).items():
        shown = [f"{cells[b][0]:.3f} ± {cells[b][1]:.3f}" if b in cells else "-" for b in budgets]
        lines.append([source, schedule, *shown])
    return _header(rows), lines


def _gap_cells(rows: Sequence[Dict], metric: str) -> Tuple[List[str], List[List[str]]]:
    """Header and body of the paired-gap table (empty body when no source has its control)."""
    budgets = _budgets(rows)
    lines = []
    for (source, schedule), cells in paired_gaps(rows, metric).items():
        shown = [_gap_cell(*cells[b]) if b in cells else "-" for b in budgets]
        lines.append([f"{source} - {control_of(source)}", schedule, *shown])
    return _header(rows), lines


def _gap_cell(mean: float, low: float, high: float, n: int) -> str:
    """``+0.210 [-0.171, +0.591]``; from one seed the mean alone, said to have no interval (not ``[m, m]``)."""
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]" if n > 1 else f"{mean:+.3f} (one seed: no interval)"


def _plain(title: str, header: List[str], lines: List[List[str]]) -> List[str]:
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    return [title] + ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in [header, *lines]]


def format_table(rows: Sequence[Dict], metric: str = "test_accuracy") -> str:
    """Plain-text tables for the terminal: ``metric`` per source and schedule, then the paired gaps to controls."""
    text = _plain(f"{metric.replace('_', ' ')}, {seeds_note(rows)}", *_table_cells(rows, metric))
    header, gaps = _gap_cells(rows, metric)
    if gaps:
        text += [""] + _plain("gap to the random-init control (same label samples and seeds), mean [95% interval]",
                              header, gaps)
    return "\n".join(text)


def _markdown(title: str, header: List[str], lines: List[List[str]]) -> List[str]:
    return [f"## {title}\n", "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(line) + " |" for line in lines], ""]


def format_markdown(rows: Sequence[Dict]) -> str:
    """``results.md``: test accuracy and macro F1 tables (mean ± std over seeds), and the paired gaps."""
    parts = ["# Fine-tuning with few labels\n"]
    for metric, title in (("test_accuracy", "Test accuracy"), ("macro_f1", "Macro F1")):
        parts += _markdown(f"{title} ({seeds_note(rows)})", *_table_cells(rows, metric))
    header, gaps = _gap_cells(rows, "test_accuracy")
    if gaps:
        parts += _markdown("Test accuracy gap to the random-init control (paired by seed), mean [95% interval]",
                           header, gaps)
    return "\n".join(parts)


def format_csv(rows: Sequence[Dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def learning_curves_figure(rows: Sequence[Dict]):
    """Test accuracy against labels per class (log axis), one line per source and schedule, std error bars.

    Built on ``matplotlib.figure.Figure`` (no pyplot, no global backend switch).
    """
    from matplotlib.figure import Figure

    budgets = _budgets(rows)
    where = {row["labels_per_class"]: budget_x(row) for row in rows}
    lines = summarize(rows, "test_accuracy")
    sources = list(dict.fromkeys(source for source, _ in lines))
    schedules = list(dict.fromkeys(schedule for _, schedule in lines))
    figure = Figure(figsize=(9, 6), dpi=120)
    ax = figure.add_subplot()
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
    xs = [where[b] for b in budgets]
    ax.set_xlim(min(xs) / 1.5, max(xs) * 1.5)  # a single budget still gets a readable axis around its points
    ax.set_xticks(xs)
    ax.set_xticklabels([f"all\n(~{where[b]:.0f})" if b == "all" else budget_name(b) for b in budgets])
    ax.minorticks_off()
    ax.set_title(f"Test accuracy vs. labels per class ({seeds_note(rows)})", fontsize=14)
    ax.set_xlabel("labeled examples per class (log scale)", fontsize=13)
    ax.set_ylabel("test accuracy", fontsize=13)
    ax.tick_params(labelsize=12)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=11, loc="best")
    figure.tight_layout()
    return figure


def write_report(rows: Sequence[Dict], out_dir, config: Optional[Dict] = None) -> List[Path]:
    """Write ``results.json`` (rows and the run's configuration), ``results.csv``, ``results.md`` and
    ``learning_curves.png`` into ``out_dir``; ``config`` defaults to ``rows.config`` of :class:`Results`."""
    from pretrain.core.errors import LayerwiseError
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file in the way, no permission
        raise LayerwiseError(f"report_dir={out}: cannot make that folder ({error.strerror}); choose another") from None
    config = config if config is not None else getattr(rows, "config", {})
    save_json({"config": config, "rows": list(rows)}, out / "results.json")
    save_text(format_csv(rows), out / "results.csv")
    save_text(format_markdown(rows), out / "results.md")
    learning_curves_figure(rows).savefig(out / "learning_curves.png")
    return [out / "results.json", out / "results.csv", out / "results.md", out / "learning_curves.png"]
