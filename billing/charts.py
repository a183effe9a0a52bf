"""Server-rendered SVG charts for the dashboard: no JavaScript, readable on a phone
(they scale with their container), with a text title for screen readers."""

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 220
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 56, 28, 12
COLORS = {
    "llm": "#4f46e5",
    "cache_exact": "#16a34a",
    "cache_semantic": "#22c55e",
    "error": "#dc2626",
    "embedding": "#0891b2",
}


def _axis(maximum: float, fmt) -> str:
    lines = []
    for step in range(5):
        value = maximum * step / 4
        y = HEIGHT - PAD_BOTTOM - (HEIGHT - PAD_BOTTOM - PAD_TOP) * step / 4
        lines.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#6b7280">'
            f"{escape(fmt(value))}</text>"
        )
    return "".join(lines)


def stacked_bars(
    title: str, labels: Sequence[str], series: dict[str, Sequence[float]], fmt=lambda v: f"{v:g}"
) -> SafeString:
    """One bar per label, stacked by series (e.g. requests per day by source)."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    maximum = max(totals, default=0) or 1
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = (WIDTH - PAD_LEFT) / max(len(labels), 1)
    bars = []
    for i, label in enumerate(labels):
        y = HEIGHT - PAD_BOTTOM
        for name, values in series.items():
            h = plot_h * values[i] / maximum
            if h > 0:
                y -= h
                bars.append(
                    f'<rect x="{PAD_LEFT + i * slot + slot * 0.15:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
                    f'height="{h:.1f}" fill="{COLORS.get(name, "#6b7280")}">'
                    f"<title>{escape(label)} {escape(name)}: {escape(fmt(values[i]))}</title></rect>"
                )
        if len(labels) <= 16 or i % max(1, len(labels) // 8) == 0:
            bars.append(
                f'<text x="{PAD_LEFT + (i + 0.5) * slot:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="10" '
                f'fill="#6b7280">{escape(label)}</text>'
            )
    legend = "".join(f'<tspan fill="{COLORS.get(name, "#6b7280")}">■</tspan> {escape(name)} ' for name in series)
    return mark_safe(  # noqa: S308 - every interpolated text is escaped above
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT + 16}" role="img" aria-label="{escape(title)}" class="chart">'
        f"<title>{escape(title)}</title>{_axis(maximum, fmt)}{''.join(bars)}"
        f'<text x="{PAD_LEFT}" y="{HEIGHT + 12}" font-size="11">{legend}</text></svg>'
    )


def horizontal_bars(title: str, items: dict[str, float], fmt=lambda v: f"{v:g}") -> SafeString:
    """One row per item (e.g. the model mix)."""
    maximum = max(items.values(), default=0) or 1
    row = 26
    height = max(row * len(items), row)
    rows = []
    for i, (name, value) in enumerate(items.items()):
        width = (WIDTH - 200) * value / maximum
        rows.append(
            f'<text x="0" y="{i * row + 17}" font-size="12">{escape(name)}</text>'
            f'<rect x="150" y="{i * row + 5}" width="{width:.1f}" height="16" fill="#4f46e5"/>'
            f'<text x="{156 + width:.1f}" y="{i * row + 17}" font-size="12">{escape(fmt(value))}</text>'
        )
    return mark_safe(  # noqa: S308 - every interpolated text is escaped above
        f'<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" class="chart">'
        f"<title>{escape(title)}</title>{''.join(rows)}</svg>"
    )
