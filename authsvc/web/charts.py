"""Usage charts for the keys page: bars stacked by outcome, laid out here, drawn as SVG.

Nothing is fetched by the browser: the page carries the drawing. Each bar has a text title
and each chart its totals by outcome in words, so nothing depends on telling colours apart.
"""

from datetime import datetime
from typing import Any

from .. import usage
from ..clock import iso, utcnow

WIDTH, HEIGHT = 300, 80  # the drawing area, in SVG units
SPANS = {"hour": (24, "last 24 hours"), "day": (30, "last 30 days")}


def bars(key_id: str, granularity: str, now: datetime) -> dict[str, Any]:
    """One chart: a bar per hour or day, oldest first, zeros included, and the totals."""
    count, caption = SPANS[granularity]
    step = usage.GRANULARITIES[granularity]
    first = usage.start_of(granularity, now) - step * (count - 1)
    counted = {row["start"]: row for row in usage.report(key_id, granularity, first)["data"]}
    starts = [first + step * index for index in range(count)]
    buckets = [counted.get(iso(start), dict.fromkeys(usage.OUTCOMES, 0)) for start in starts]
    tallest = max([sum(bucket[name] for name in usage.OUTCOMES) for bucket in buckets] + [1])
    width = WIDTH / count
    drawn = []
    for index, (start, bucket) in enumerate(zip(starts, buckets, strict=True)):
        top = HEIGHT
        segments = []
        for name in usage.OUTCOMES:
            height = HEIGHT * bucket[name] / tallest
            top -= height
            if bucket[name]:
                segments.append({"outcome": name, "y": round(top, 2), "height": round(height, 2)})
        title = ", ".join(f"{name.replace('_', ' ')} {bucket[name]}" for name in usage.OUTCOMES)
        drawn.append(
            {
                "x": round(index * width + 0.5, 2),
                "width": round(width - 1, 2),
                "segments": segments,
                "title": f"{label(start, granularity)}: {title}",
            }
        )
    totals = {name: sum(bucket[name] for bucket in buckets) for name in usage.OUTCOMES}
    return {
        "caption": caption,
        "bars": drawn,
        "tallest": tallest,
        "totals": totals,
        "total": sum(totals.values()),
        "first": label(starts[0], granularity),
        "last": label(starts[-1], granularity),
    }


def label(start: datetime, granularity: str) -> str:
    return start.strftime("%H:00" if granularity == "hour" else "%b %d")


def key_charts(key_id: str, now: datetime | None = None) -> list[dict[str, Any]]:
    """A key's two charts: by hour over a day, by day over a month."""
    moment = now or utcnow()
    return [bars(key_id, granularity, moment) for granularity in SPANS]
