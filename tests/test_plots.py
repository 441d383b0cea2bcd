"""loss.png and eval.png as a person reads them: a loss that falls by orders of magnitude on a log axis, eval bars
with their values on them, zero bars that still show, and no legend over the bars."""

from __future__ import annotations

import math

import pytest

from core.eval_report import EvalReport, Scores
from trainer.plots import LOG_LOSS_SPAN, STUB, eval_figure, loss_figure, loss_scale, plot_eval, plot_loss


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def falling(steps: int = 60) -> list[dict]:
    hist = [{"step": s, "loss": 8 * math.exp(-s / 6) + 0.002} for s in range(1, steps + 1)]
    return hist + [{"step": s, "eval_loss": 8 * math.exp(-s / 6) + 0.01} for s in (20, 40, 60)]


def test_loss_spanning_orders_of_magnitude_is_on_a_log_axis(tmp_path):
    assert LOG_LOSS_SPAN == 30
    ax = loss_figure(falling(), "lora: loss").axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "loss (log scale)"
    flat = loss_figure([{"step": s, "loss": 2 - s / 100} for s in range(1, 50)], "t").axes[0]
    assert flat.get_yscale() == "linear" and flat.get_ylabel() == "loss"
    assert (loss_scale([3.0, 0.1]), loss_scale([3.0, 0.11]), loss_scale([3.0, 0.0])) == ("log", "linear", "linear")
    assert plot_loss(falling(), tmp_path / "loss.png", "t").read_bytes()[:4] == b"\x89PNG"


def test_non_finite_losses_are_left_out_of_the_plot():
    ax = loss_figure([{"step": 1, "loss": 2.0}, {"step": 2, "loss": float("nan")}, {"step": 3, "loss": 1.0},
                      {"step": 4, "loss": float("inf")}], "t").axes[0]
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == [1, 3]
    assert loss_figure([{"step": 1, "loss": float("nan")}], "t") is None


def report(base: dict, tuned: dict) -> EvalReport:
    return EvalReport(run_dir="run", method="lora", base_model="base", data="test.jsonl", records=30, metric="json",
                      metric_why="answers are JSON", general_text="general", wall_time_s=1.0,
                      base=Scores(answer_loss=3.2, metrics=base, general_loss=4.1),
                      tuned=Scores(answer_loss=0.4, metrics=tuned, general_loss=4.3),
                      diff={}, forgetting=False, regressions=[], wins=[])


def test_eval_bars_labelled_zero_bars_visible_legend_off_the_bars(tmp_path):
    r = report({"exact_match": 0.0, "json_valid": 0.0, "json_match": 0.0},
               {"exact_match": 0.63, "json_valid": 1.0, "json_match": 0.004})
    fig = eval_figure(r)
    metrics, losses = fig.axes
    assert [t.get_text() for t in metrics.texts] == ["0.00", "0.00", "0.00", "0.63", "1.00", "0.00"]
    assert [t.get_text() for t in losses.texts] == ["3.2", "4.1", "0.4", "4.3"]
    heights = [p.get_height() for p in metrics.patches]
    assert heights[:3] == [STUB] * 3 and heights[5] == STUB  # zero and near-zero bars drawn as a visible stub
    assert metrics.get_legend() is None and losses.get_legend() is None and len(fig.legends) == 1
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    for ax in fig.axes:
        assert not legend.overlaps(ax.get_window_extent())  # above the panels, never over a bar
    assert plot_eval(r, tmp_path / "eval.png").read_bytes()[:4] == b"\x89PNG"
