"""A small, dependency-free SVG bar chart: axes, ticks, labels, title."""

from __future__ import annotations

import math
import re
from xml.sax.saxutils import escape as _escape

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
BAR = "#2f6db5"
GRID = "#e3e7ee"
INK = "#1f2933"
MUTED = "#52606d"
MAX_LABEL_CHARS = 18
# What XML 1.0 forbids in a document, even escaped: C0 controls but tab, newline and return; surrogates;
# U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape(text: str) -> str:
    """Text for an SVG element: escaped, and without the characters no XML document may hold."""
    return _escape(_NOT_XML.sub("\ufffd", text))


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least `top` (steps of 1, 2, 2.5 or 5 × 10^k)."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [round(i * step, 10) for i in range(math.ceil(top / step - 1e-9) + 1)]


def compact(value: float) -> str:
    """1500 → 1.5k, 2_000_000 → 2M: tick labels that fit."""
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            text = f"{value / size:.2f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return f"{value:g}"


def _clip(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


def _text(
    x: float,
    y: float,
    body: str,
    *,
    size: int = 12,
    anchor: str = "middle",
    fill: str = INK,
    weight: str = "normal",
    rotate: float | None = None,
) -> str:
    transform = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate is not None else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
        f'font-weight="{weight}"{transform}>{escape(body)}</text>'
    )


def bar_chart(
    *, title: str, subtitle: list[str], labels: list[str], values: list[int], x_title: str, y_title: str
) -> str:
    """An SVG document: one bar per label, y axis from zero with round ticks."""
    n = len(values)
    full_labels = [str(label) for label in labels]
    labels = [_clip(label) for label in full_labels]
    slot = 36 if n <= 20 else max(4, min(24, 1200 // max(n, 1)))
    plot_w = max(520, n * slot)
    plot_h = 320
    longest = max((len(label) for label in labels), default=0)
    rotate = n > 8 or longest > 6
    # A label rotated by 45 degrees drops about 0.7 of its length (about 6.5 px a character at 11 px).
    label_room = (longest * 6.5 * 0.72 + 22) if rotate else 30
    left, right = 90, 30
    top = 62 + 16 * len(subtitle)
    width = max(left + plot_w + right, left + int(max(map(len, subtitle), default=0) * 6.6) + right)
    height = int(top + plot_h + label_room + 36)
    base_y = top + plot_h
    ticks = nice_ticks(max(values, default=0))
    y_max = ticks[-1]

    def y_of(value: float) -> float:
        return base_y - (value / y_max) * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="{FONT}" role="img">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        _text(left, 30, title, size=18, anchor="start", weight="bold"),
    ]
    out += [
        _text(left, 52 + 16 * i, line, size=12, anchor="start", fill=MUTED) for i, line in enumerate(subtitle)
    ]
    # Horizontal grid and y tick labels.
    for tick in ticks:
        y = y_of(tick)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(f'<line x1="{left - 5}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="{INK}"/>')
        out.append(_text(left - 8, y + 4, compact(tick), size=11, anchor="end"))
    # Bars, each with its value as a tooltip; value labels on top when there is room.
    show_values = n <= 20
    every = max(1, math.ceil(n / (plot_w / 18)))  # at most one x label per 18 px
    for i, (label, full, value) in enumerate(zip(labels, full_labels, values, strict=True)):
        x = left + i * (plot_w / n) if n else left
        bar_w = (plot_w / n) * 0.72
        x_bar = x + (plot_w / n - bar_w) / 2
        y = y_of(value)
        out.append(
            f'<rect x="{x_bar:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{base_y - y:.1f}" '
            f'fill="{BAR}"><title>{escape(full)}: {value:,}</title></rect>'
        )
        if show_values and value:
            out.append(_text(x_bar + bar_w / 2, y - 4, compact(value), size=10, fill=MUTED))
        if i % every == 0:
            cx = x_bar + bar_w / 2
            if rotate:
                out.append(_text(cx + 4, base_y + 14, label, size=11, anchor="end", rotate=-45))
            else:
                out.append(_text(cx, base_y + 18, label, size=11))
    if not any(values):
        out.append(
            _text(left + plot_w / 2, top + plot_h / 2, "No paid sales in this window", size=14, fill=MUTED)
        )
    # Axes last, over the bars' bases.
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base_y}" stroke="{INK}" stroke-width="1.5"/>')
    out.append(
        f'<line x1="{left}" y1="{base_y}" x2="{left + plot_w}" y2="{base_y}" stroke="{INK}" '
        f'stroke-width="1.5"/>'
    )
    out.append(_text(22, top + plot_h / 2, y_title, size=12, rotate=-90, fill=MUTED))
    out.append(_text(left + plot_w / 2, base_y + label_room + 16, x_title, size=12, fill=MUTED))
    out.append("</svg>")
    return "\n".join(out) + "\n"
