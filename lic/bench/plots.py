"""RD plots with matplotlib (object API with the Agg canvas: no display, no pyplot state).

Measured curves are solid lines with round markers (past the tenth, whose colours repeat,
dash-dot lines with square markers), published curves dashed; the anchor is drawn thicker.
The x range follows the measured curves (published points far outside it are left out so
they do not squash the plot).
"""

from __future__ import annotations

import io
from pathlib import Path

from .results import Curve


def _cycle(colors):
    while True:
        yield from colors


def _figure(width: float = 7.5, height: float = 5.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def rd_figure(curves: list[Curve], column: str, ylabel: str, title: str, anchor: str | None = None):
    """One RD plot: ``column`` against bpp for every curve that has it; returns the Figure."""
    curves = [c for c in curves if c.has(column)]
    measured = [c for c in curves if c.source == "measured"]
    span = measured or curves
    xmax = max((c.xy(column)[0].max() for c in span), default=1.0) * 1.08
    many = len(curves) > 10
    fig = _figure(10.5 if many else 7.5, 5.5 if many else 5.0)
    ax = fig.add_subplot()
    import matplotlib

    palettes = {"measured": iter(_cycle(matplotlib.colormaps["tab10"].colors)),
                "published": iter(_cycle(matplotlib.colormaps["Dark2"].colors + matplotlib.colormaps["tab20b"].colors[::2]))}
    n_measured = 0
    for c in curves:
        color = next(palettes[c.source])
        # past ten measured curves the colours repeat: the next ten get square markers and dash-dot lines
        style = [("-", "o"), ("-.", "s"), (":", "^")][min(n_measured // 10, 2)] if c.source == "measured" else None
        n_measured += c.source == "measured"
        x, y = c.xy(column)
        keep = x <= xmax
        if c.source == "published" and keep.sum() < 2:
            continue
        x, y = x[keep], y[keep]
        is_anchor = c.name == anchor
        ax.plot(
            x, y,
            linestyle=style[0] if c.source == "measured" else "--",
            marker=style[1] if c.source == "measured" else ".",
            markersize=4 if c.source == "measured" else 3,
            linewidth=2.6 if is_anchor else 1.4,
            color=color,
            label=c.name + (" (anchor)" if is_anchor else ""),
        )
    ax.set_xlim(0, xmax)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if many:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    else:
        ax.legend(fontsize=8, loc="lower right")
    return fig


def save_figure(fig, base: str | Path, formats=("png", "svg")) -> list[Path]:
    """Write ``base.png`` and ``base.svg``; returns the paths.  The SVG is reproducible (no date, fixed
    element ids), so regenerating a plot from the same numbers leaves the file unchanged."""
    import matplotlib

    base = Path(base)
    base.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        p = base.with_suffix("." + fmt)
        with matplotlib.rc_context({"svg.hashsalt": "lic"}):
            fig.savefig(p, dpi=150 if fmt == "png" else None, metadata={"Date": None} if fmt == "svg" else None)
        out.append(p)
    return out


def svg_text(fig) -> str:
    """The figure as an inline SVG element (XML prolog and DOCTYPE removed)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg"):]
