"""Server-rendered charts: a project's series as SVG geometry for the templates.

Pure presentation, no query: the views pass in what services/fleet/metrics.py read.
The SVG holds only lines (scaled to any width, strokes kept thin with
`vector-effect`); every word and number is HTML around it, so text never
stretches and the page reads the same without JavaScript or with a screen
reader. Styling is classes in berth.css: the CSP allows no inline style.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from projects.services.fleet.metrics import MetricsSeries, Point

WIDTH = 600
HEIGHT = 120
SPARK_WIDTH = 80
SPARK_HEIGHT = 20
# A pause longer than this many steps (a stopped project, a missed pass) breaks the line.
GAP_STEPS = 2.5


@dataclass(frozen=True)
class Line:
    css: str  # chart-line, chart-line-2
    label: str
    segments: tuple[str, ...]  # each an SVG polyline's `points`


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    lines: tuple[Line, ...]
    current: str  # the newest value, formatted; "—" when there is none
    top: str  # the y axis's top, formatted
    limit_label: str = ""  # "limit 768 MiB", "max_connections 100"
    limit_y: float | None = None  # where the limit's line is drawn

    @property
    def empty(self) -> bool:
        return not any(line.segments for line in self.lines)

    @property
    def width(self) -> int:
        return WIDTH

    @property
    def height(self) -> int:
        return HEIGHT


def mib(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB" if value >= 2**20 else f"{value / 1024:,.0f} KiB"


def number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:,.2f}"


def percent(value: float) -> str:
    return f"{value:.1f} %"


def per_second(value: float) -> str:
    return f"{number(value)}/s"


def _segments(points: Sequence[Point], *, start: int, end: int, top: float, step: int) -> tuple[str, ...]:
    span = max(end - start, 1)
    segments: list[list[str]] = []
    previous: int | None = None
    for t, v in points:
        if previous is None or t - previous > step * GAP_STEPS:
            segments.append([])
        x = (t - start) / span * WIDTH
        y = HEIGHT - (min(v, top) / top * HEIGHT if top > 0 else 0)
        segments[-1].append(f"{x:.1f},{y:.1f}")
        previous = t
    # A lone point is drawn as a short flat line, so it shows.
    out = []
    for seg in segments:
        if len(seg) == 1:
            x_text, y_text = seg[0].split(",")
            seg = [f"{max(0.0, float(x_text) - 2):.1f},{y_text}", seg[0]]
        out.append(" ".join(seg))
    return tuple(out)


def _chart(
    metrics: MetricsSeries,
    key: str,
    title: str,
    names: Sequence[tuple[str, str]],
    fmt: Callable[[float], str],
    *,
    limit: str | None = None,
    limit_word: str = "limit",
    fixed_top: float | None = None,
    scale: float = 1.0,
) -> Chart:
    series = {name: [(t, v * scale) for t, v in metrics.series.get(name, [])] for name, _ in names}
    limit_value = metrics.latest(limit) if limit else None
    highest = max([v for points in series.values() for _, v in points] + [limit_value or 0.0, 0.0])
    top = fixed_top if fixed_top is not None else (highest * 1.15 or 1.0)
    lines = tuple(
        Line(css=f"chart-line-{i + 1}", label=label, segments=_segments(series[name], start=metrics.start, end=metrics.end, top=top, step=metrics.step_seconds))
        for i, (name, label) in enumerate(names)
    )
    first = series[names[0][0]]
    current = fmt(first[-1][1]) if first else "—"
    limit_y = None
    limit_label = ""
    if limit_value:
        limit_y = round(HEIGHT - min(limit_value, top) / top * HEIGHT, 1)
        limit_label = f"{limit_word} {fmt(limit_value)}"
    return Chart(key=key, title=title, lines=lines, current=current, top=fmt(top), limit_label=limit_label, limit_y=limit_y)


def project_charts(metrics: MetricsSeries) -> list[Chart]:
    """The project page's charts, in reading order."""
    return [
        _chart(metrics, "cpu", "CPU, db + api (100 % = one core)", [("cpu_percent", "CPU")], percent),
        _chart(metrics, "memory", "Memory (db + api)", [("memory_bytes", "in use")], mib, limit="memory_limit_bytes"),
        _chart(metrics, "connections", "Connections", [("connections", "in use")], number, limit="max_connections", limit_word="max_connections"),
        _chart(metrics, "transactions", "Transactions", [("commits_per_s", "commits"), ("rollbacks_per_s", "rollbacks")], per_second),
        _chart(metrics, "cache", "Cache hit ratio", [("cache_hit_ratio", "hit ratio")], percent, fixed_top=100.0, scale=100.0),
        _chart(metrics, "size", "Database size", [("db_size_bytes", "size")], mib),
        _chart(metrics, "api", "API answering (1 = up)", [("api_up", "up")], number, fixed_top=1.0),
    ]


def axis_time(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@dataclass(frozen=True)
class Sparkline:
    points: str
    peak: str  # the highest value, for the text beside it

    @property
    def width(self) -> int:
        return SPARK_WIDTH

    @property
    def height(self) -> int:
        return SPARK_HEIGHT


def sparkline(values: Sequence[float]) -> Sparkline | None:
    """A list row's activity (commits per second, oldest first) as a small line; None without data."""
    if not values:
        return None
    top = max(values) or 1.0
    n = max(len(values) - 1, 1)
    points = " ".join(f"{i / n * SPARK_WIDTH:.1f},{SPARK_HEIGHT - 1 - v / top * (SPARK_HEIGHT - 2):.1f}" for i, v in enumerate(values))
    return Sparkline(points=points, peak=per_second(max(values)))
