"""loss.png: training and evaluation loss against steps; eval.png: base vs tuned."""

from __future__ import annotations

import math
from pathlib import Path

LOG_LOSS_SPAN = 30  # a loss whose largest value is this many times its smallest is drawn on a log axis
STUB = 0.012  # a zero or near-zero bar is drawn this share of the axis high, so that it shows


def _finite(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(x, y) for x, y in points if isinstance(y, (int, float)) and math.isfinite(y)]


def loss_scale(values: list[float]) -> str:
    """`log` when the loss spans orders of magnitude (a fall from 8 to 0.01 is a flat line on a linear axis)."""
    pos = [v for v in values if v > 0]
    return "log" if pos and len(pos) == len(values) and max(pos) / min(pos) >= LOG_LOSS_SPAN else "linear"


def plot_loss(history: list[dict], path: Path, title: str) -> Path | None:
    fig = loss_figure(history, title)
    return _save(fig, path) if fig is not None else None


def loss_figure(history: list[dict], title: str):
    """The loss figure (None without any finite loss); `plot_loss` saves it."""
    train = _finite([(r["step"], r["loss"]) for r in history if "loss" in r])
    evals = _finite([(r["step"], r["eval_loss"]) for r in history if "eval_loss" in r])
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", color="#2e86c1")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="eval loss", color="#d35400")
    scale = loss_scale([y for _, y in train + evals])
    ax.set_yscale(scale)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (log scale)" if scale == "log" else "loss")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both" if scale == "log" else "major")
    ax.legend()
    return fig


def _bars(ax, labels: list[str], pairs: list[tuple[float, float]], top: float, fmt: str) -> None:
    """Base and tuned bars side by side, each with its value on top; a zero or near-zero bar still shows as a
    stub of its colour (and its value says 0)."""
    xs = range(len(labels))
    for shift, side, name, colour in ((-0.2, 0, "base", "#95a5a6"), (0.2, 1, "tuned", "#2e86c1")):
        values = [p[side] for p in pairs]
        shown = [max(v, top * STUB) for v in values]
        bars = ax.bar([x + shift for x in xs], shown, 0.4, label=name, color=colour)
        ax.bar_label(bars, labels=[format(v, fmt) for v in values], padding=2, fontsize=8)
    ax.set_xticks(list(xs), labels, rotation=15)
    ax.set_ylim(0, top * 1.12)
    ax.grid(axis="y", alpha=0.3)


def plot_eval(report, path: Path) -> Path | None:
    return _save(eval_figure(report), path)


def eval_figure(report):
    """eval.png: base vs tuned, each task metric (0-1) and the two losses side by side, each bar labelled with its
    value; the legend sits above the panels, never over a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report.base.metrics)
    losses = [(k, getattr(report.base, k), getattr(report.tuned, k)) for k in ("answer_loss", "general_loss")
              if getattr(report.base, k) is not None and getattr(report.tuned, k) is not None]
    losses = [(k, b, t) for k, b, t in losses if math.isfinite(b) and math.isfinite(t)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), dpi=110,
                             gridspec_kw={"width_ratios": [max(2, len(names)), 2]})
    _bars(axes[0], names, [(report.base.metrics[k], report.tuned.metrics[k]) for k in names], 1.0, ".2f")
    axes[0].set_title(f"{report.metric} on {report.records} records (higher is better)", fontsize=9)
    _bars(axes[1], [k for k, _, _ in losses], [(b, t) for _, b, t in losses],
          max([max(b, t) for _, b, t in losses], default=1.0) or 1.0, ".3g")
    axes[1].set_title("loss (lower is better)", fontsize=9)
    fig.suptitle(f"{report.method}: base vs tuned", fontsize=11)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=2, frameon=False, fontsize=9)
    return fig


def _save(fig, path: Path) -> Path:
    """Write the picture atomically (a reader never sees half a PNG) and free the figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
