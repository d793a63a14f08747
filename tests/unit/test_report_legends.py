"""Report plots keep their legends off the data (the rejections legend once hid the gsm8k/SV bar)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from metamath_ray.augment.report import bar_chart_figure  # noqa: E402
from metamath_ray.evaluate.report import accuracy_figure  # noqa: E402


def _assert_legend_clear(fig) -> None:
    """The legend is inside the saved figure and overlaps no bar (nor error bar)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    legend = ax.get_legend().get_window_extent(renderer)
    figure = fig.bbox
    assert figure.x0 <= legend.x0 and legend.x1 <= figure.x1 and figure.y0 <= legend.y0 and legend.y1 <= figure.y1
    bars = [p.get_window_extent(renderer) for p in ax.patches if p.get_height() > 0]
    assert bars, "the chart has bars"
    hidden = [b for b in bars if b.overlaps(legend)]
    assert not hidden, f"the legend covers {len(hidden)} bar(s)"


@pytest.mark.parametrize("stacked", [True, False])
def test_rejection_chart_legend_hides_no_bar(stacked):
    labels = ["gsm8k/AnsAug", "gsm8k/FOBAR", "gsm8k/Rephrasing", "gsm8k/SV", "math/AnsAug", "math/SV"]
    # Every bar is tall, so no spot inside the axes is free: matplotlib's "best" legend (the old
    # placement) covers bars here, as it covered the demo's gsm8k/SV bar.
    series = {"wrong_answer": [90, 88, 92, 95, 90, 91], "no_answer": [85, 90, 88, 94, 86, 90],
              "rewrite_no_statement": [80, 92, 90, 96, 89, 88]}
    fig = bar_chart_figure(labels, series, "Rejections by reason", "candidates", stacked=stacked)
    try:
        _assert_legend_clear(fig)
    finally:
        plt.close(fig)


def test_accuracy_legend_hides_no_bar_at_100_percent():
    def dataset(acc):
        cell = {"accuracy": acc, "ci95": [max(0.0, acc - 0.1), min(1.0, acc + 0.05)]}
        return {"questions": 10, "greedy": {"strict": cell, "metamath": cell}}

    report = {"run_name": "eval", "datasets": {"gsm8k": dataset(1.0), "math500": dataset(0.95), "svamp": dataset(1.0)}}
    fig = accuracy_figure(report, plt)
    try:
        _assert_legend_clear(fig)
    finally:
        plt.close(fig)
