"""The look shared by the report's charts: sizes, colours, matplotlib set-up, axes helpers.

Fixed margins rather than a layout engine (a third faster to draw); 864
pixels wide at `DPI`, the size the page shows them at on a laptop.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

DPI = 120
SIZE = (7.2, 4.0)  # inches; 864 x 480 pixels at DPI
SMALL = (7.2, 3.3)
# Fixed margins (inches) rather than a layout engine: a third faster to draw.
MARGINS = {"left": 0.85, "right": 0.25, "top": 0.42, "bottom": 0.62}
MAX_TIME_POINTS = 1500
BINS_PER_DECADE = 100
MIN_DURATION = 1e-5  # 10 µs: durations below fall in the first bin
MAX_DECADES = 9  # 10 µs .. 10,000 s
MS = 1000.0  # the charts show durations in milliseconds, as the page's tables

COLORS = {
    "ok": "#2a6fb0",
    "max": "#7fb2e5",
    "error": "#c0392b",
    "avg": "#e67e22",
    "med": "#1b4f72",
    "p95": "#8e44ad",
    "p99": "#c0392b",
    "grid": "#d9dde3",
    "box": "#a9cce3",
    "ref": "#7f8c8d",
    "challenger": "#2a6fb0",
}
RATING_COLORS = {
    "UNACCEPTABLE": "#95a5a6",
    "POOR": "#e74c3c",
    "FAIR": "#f1c40f",
    "Good": "#27ae60",
    "Excellent": "#2a6fb0",
}
CYCLE_PALETTE = ("#2a6fb0", "#e67e22", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d")


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
            "font.size": 10.5,
            "axes.titlesize": 12,
            "axes.titleweight": "bold",
            "axes.labelsize": 10.5,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.color": COLORS["grid"],
            "grid.linewidth": 0.6,
            "legend.fontsize": 9.5,
            "legend.frameon": False,
            "svg.fonttype": "none",
        }
    )
    return plt


def figure(
    size: tuple[float, float], rows: int = 1, ratios: list[float] | None = None, top: float = 0.0
) -> Any:
    """A figure with `rows` stacked axes sharing x, and fixed margins (`top`: extra, inches)."""
    plt = pyplot()
    width, height = size
    fig, axes = plt.subplots(
        rows,
        1,
        figsize=size,
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": ratios} if ratios else None,
    )
    fig.subplots_adjust(
        left=MARGINS["left"] / width,
        right=1 - MARGINS["right"] / width,
        top=1 - (MARGINS["top"] + top) / height,
        bottom=MARGINS["bottom"] / height,
        hspace=0.35 / max(1.0, height / rows),
    )
    return fig, list(axes[:, 0])


def log_ticks(axis: Any, low: float, high: float) -> None:
    """A log scale with plain labels (0.05, 0.1, 0.2 ...) instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    decades = math.log10(high / low) if low > 0 and high > low else 1.0
    subs = (1.0, 2.0, 5.0) if decades <= 3.2 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def save(fig: Any, directory: str, name: str) -> str:
    filename = f"{name}.png"
    fig.savefig(os.path.join(directory, filename), format="png", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return filename


def cycle_axis(ax: Any, cvus: Sequence[int]) -> None:
    """Cycles as evenly spaced categories labelled with their users."""
    ax.set_xticks(range(len(cvus)))
    ax.set_xticklabels([str(c) for c in cvus])
    ax.set_xlim(-0.6, len(cvus) - 0.4)
    ax.set_xlabel("concurrent users (CUs)")


def legend(ax: Any, **kwargs: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, **kwargs)


def thousands(axis: Any) -> None:
    """Large counts with thousands separators (60,000 rather than 60000)."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1000 else f"{v:g}"))
