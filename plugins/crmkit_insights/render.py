"""Drawing a :class:`~crmkit_insights.registry.ChartData` as PNG or SVG with matplotlib.

Chinese labels need a font with CJK glyphs (matplotlib's default DejaVu Sans has none and
draws boxes): the ``chart_font`` setting, else the first installed family of
:data:`CJK_FAMILIES` that matplotlib's font manager knows (Debian's fonts-noto-cjk, which
``.ci/run`` installs, brings Noto Sans CJK). Without one the chart is still drawn, with a
warning on the result, and CJK text shows as boxes.
"""

from __future__ import annotations

import io
import threading
from typing import Any

from crmkit_insights.registry import ChartData

#: Families tried in order when ``chart_font`` is empty.
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Serif CJK SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "AR PL UMing CN",
    "Droid Sans Fallback",
    "Source Han Sans SC",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
)
FORMATS = ("png", "svg")
_LOCK = threading.Lock()  # pyplot's state is global: one chart at a time


def cjk_family(preferred: str = "") -> str | None:
    """The font family to draw with: ``preferred`` if matplotlib knows it, else the first
    installed CJK family, else ``None``."""
    from matplotlib import font_manager

    known = {entry.name for entry in font_manager.fontManager.ttflist}
    if preferred and preferred in known:
        return preferred
    if not any("CJK" in name or name in CJK_FAMILIES for name in known):
        # a font installed after matplotlib built its cache: look once more
        for path in font_manager.findSystemFonts():
            if any(word in path for word in ("CJK", "wqy", "uming", "Fallback")):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        known = {entry.name for entry in font_manager.fontManager.ttflist}
    return next((family for family in CJK_FAMILIES if family in known), None)


def render(data: ChartData, fmt: str, *, font: str | None = None) -> bytes:
    """The chart as ``png`` or ``svg`` bytes, drawn in ``font`` (a family name; ``None``:
    matplotlib's default)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {FORMATS}")
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    with _LOCK:
        rc: Any = {"svg.fonttype": "path"}
        if font:
            rc["font.family"] = [font, "DejaVu Sans"]
        with matplotlib.rc_context(rc):
            figure = Figure(figsize=(8, 4.5), dpi=100)
            axes = figure.subplots()
            _draw(axes, data)
            axes.set_title(data.title)
            if data.x_label:
                axes.set_xlabel(data.x_label)
            if data.y_label:
                axes.set_ylabel(data.y_label)
            figure.tight_layout()
            buffer = io.BytesIO()
            figure.savefig(buffer, format=fmt)
    return buffer.getvalue()


def _draw(axes: Any, data: ChartData) -> None:
    labels = list(data.labels)
    if data.kind == "line":
        for name, values in data.series:
            axes.plot(labels, values, marker="o", label=name)
        axes.tick_params(axis="x", labelrotation=45)
    elif data.kind == "bar":
        width = 0.8 / max(len(data.series), 1)
        for index, (name, values) in enumerate(data.series):
            spots = [i + index * width for i in range(len(labels))]
            axes.bar(spots, values, width=width, label=name)
        axes.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels)
    else:  # barh and funnel: categories top to bottom
        name, values = data.series[0] if data.series else ("", ())
        positions = [float(i) for i in range(len(labels))][::-1]
        if data.kind == "funnel":
            widest = max(values, default=0) or 1
            lefts = [(widest - v) / 2 for v in values]
            axes.barh(positions, values, left=lefts, color="#4c72b0", label=name)
            for y, value, left in zip(positions, values, lefts, strict=True):
                axes.text(
                    left + value / 2,
                    y,
                    f"{value:g}",
                    ha="center",
                    va="center",
                    color="white" if value > widest * 0.15 else "black",
                )
            axes.set_xticks([])
        else:
            axes.barh(positions, values, label=name)
        axes.set_yticks(positions, labels)
    if len(data.series) > 1:
        axes.legend()
