"""A signed-in household's first paint, drawn by the oracle into the page it serves.

On a phone's slow connection the app's script takes seconds to arrive (a round trip and its
bytes), the page itself one round trip. So the page for ``/`` comes with today's chart already
drawn: the day's export and import as stepped SVG areas (each interval's Wh over the time it was
measured in, the two never netted, as the app's chart draws them), and the stylesheet inlined so
nothing holds the paint back. The app draws its own chart in its place once its script runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

WIDTH = 960
HEIGHT = 240
ROOT = b'<div id="root"></div>'
SERIES = ("exported_wh", "imported_wh")


def _intervals(day: Mapping[str, object]) -> list[tuple[int, int, int, int]]:
    """(start, end, exported Wh, imported Wh) of each interval of the day route's answer."""
    found = day.get("intervals")
    if not isinstance(found, list):
        return []
    keys = ("start", "end", *SERIES)
    return [
        (i["start"], i["end"], i["exported_wh"], i["imported_wh"])
        for i in found
        if isinstance(i, dict) and all(isinstance(i.get(k), int) for k in keys)
    ]


def day_chart(day: Mapping[str, object]) -> str | None:
    """The day route's answer as an SVG chart; None for a day without intervals."""
    intervals = _intervals(day)
    start, end = day.get("start"), day.get("end")
    if not (intervals and isinstance(start, int) and isinstance(end, int) and end > start):
        return None
    highest = max(1, *(max(exported, imported) for _, _, exported, imported in intervals))

    def x(at: int) -> int:
        return round((min(max(at, start), end) - start) * WIDTH / (end - start))

    def area(series: int) -> str:
        steps = []
        for interval in intervals:
            top = HEIGHT - round(interval[series] * (HEIGHT - 8) / highest)
            steps.append(f"M{x(interval[0])} {HEIGHT}V{top}H{x(interval[1])}V{HEIGHT}Z")
        return "".join(steps)

    paths = f'<path class="export" d="{area(2)}"/><path class="import" d="{area(3)}"/>'
    return (
        '<div class="chart first-chart" data-testid="day-chart">'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" aria-hidden="true">'
        f"{paths}</svg></div>"
    )


def painted(html: bytes, chart: str | None, build: Path) -> bytes:
    """``html`` with its stylesheets inlined and, when there is one, the chart in its root."""
    for sheet in sorted((build / "assets").glob("*.css")):
        link = f'<link rel="stylesheet" crossorigin href="/assets/{sheet.name}">'.encode()
        html = html.replace(link, b"<style>" + sheet.read_bytes() + b"</style>")
    if chart is not None:
        html = html.replace(ROOT, f'<div id="root"><main>{chart}</main></div>'.encode(), 1)
    return html
