"""loss.png: training and evaluation loss against steps."""

from __future__ import annotations

from pathlib import Path


def plot_loss(history: list[dict], path: Path, title: str) -> Path | None:
    train = [(r["step"], r["loss"]) for r in history if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in history if "eval_loss" in r]
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
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_eval(report, path: Path) -> Path | None:
    """eval.png: base vs tuned, each task metric (0-1) and the two losses side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report.base.metrics)
    losses = [(k, getattr(report.base, k), getattr(report.tuned, k)) for k in ("answer_loss", "general_loss")
              if getattr(report.base, k) is not None and getattr(report.tuned, k) is not None]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110, gridspec_kw={"width_ratios": [max(2, len(names)), 2]})
    for ax, labels, pairs, title in (
            (axes[0], names, [(report.base.metrics[k], report.tuned.metrics[k]) for k in names],
             f"{report.metric} on {report.records} records (higher is better)"),
            (axes[1], [k for k, _, _ in losses], [(b, t) for _, b, t in losses], "loss (lower is better)")):
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], [p[0] for p in pairs], 0.4, label="base", color="#95a5a6")
        ax.bar([x + 0.2 for x in xs], [p[1] for p in pairs], 0.4, label="tuned", color="#2e86c1")
        ax.set_xticks(list(xs), labels, rotation=15)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"{report.method}: base vs tuned", fontsize=11)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    """Write the picture atomically (a reader never sees half a PNG) and free the figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
