"""Metrics: every running project sampled at a fixed interval, kept compact, read back as series.

The sync watcher runs `metrics_watch` in a thread of its own: every
BERTH_METRICS_SECONDS one pass reads each running project (`stack_sample`: two
engine calls, one short query, one HTTP request) with at most
BERTH_METRICS_CONCURRENCY at once, and writes one row per project with one bulk
insert. Stopped projects are not read at all. Nothing here takes a lock an
operation waits for, and no transaction is open while the engine is asked.

Rows keep cumulative counters (CPU seconds, commits, rollbacks, blocks), so
rates and the cache hit ratio come from two rows and survive a missed pass.
Full resolution is kept RAW_KEEP (24 h); each finished hour is rolled into one
row per project, kept HOURLY_KEEP (30 days); then it is gone. A project holds
at most 86400 / BERTH_METRICS_SECONDS + 720 rows, and none once purged.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Max, Min, Q, Sum
from django.utils import timezone

from projects.models import MetricSample, Operation, Project, SecurityEvent, WatchPass
from projects.runtime import Runtime, RuntimeFailure, SampleTarget, StackSample, get_runtime
from projects.runtime.base import DbStats
from projects.services.errors import InvalidInput
from projects.services.pool.requests import Pool, pool_status
from projects.stack.spec import sample_target

logger = logging.getLogger(__name__)

H = Project.Health
RAW_KEEP = timedelta(hours=24)
HOURLY_KEEP = timedelta(days=30)
HOUR = timedelta(hours=1)
# Projects whose containers sync last saw up: a stopped or vanished stack costs nothing.
SAMPLED_HEALTH = (H.HEALTHY, H.UNHEALTHY)

# range -> (how far back, which rows, seconds per point; None: every sample)
RANGES: dict[str, tuple[timedelta, int, int | None]] = {
    "1h": (timedelta(hours=1), MetricSample.RAW, None),
    "24h": (timedelta(hours=24), MetricSample.RAW, 300),
    "7d": (timedelta(days=7), MetricSample.HOURLY, 3600),
}
RANGE_NAMES = tuple(RANGES)
# The series every answer carries, in this order (openapi.py names them too).
SERIES = (
    "cpu_percent",
    "memory_bytes",
    "memory_limit_bytes",
    "db_size_bytes",
    "connections",
    "max_connections",
    "commits_per_s",
    "rollbacks_per_s",
    "cache_hit_ratio",
    "api_up",
)
GAUGES = ("memory_bytes", "memory_limit_bytes", "db_size_bytes", "connections", "max_connections", "api_up")
COUNTERS = ("cpu_seconds", "commits", "rollbacks", "blocks_hit", "blocks_read")
FIELDS = ("at", *GAUGES, *COUNTERS)

Point = tuple[int, float]


# --- sampling --------------------------------------------------------------------


@dataclass
class SamplePass:
    projects: int = 0  # running projects read
    rows: int = 0
    engine_calls: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)  # "<project id>: <what could not be read>"


def _row(project: Project, at: datetime, sample: StackSample) -> MetricSample:
    containers = [c for c in (sample.db, sample.api) if c is not None]
    db = sample.database
    return MetricSample(
        project=project,
        at=at,
        period=MetricSample.RAW,
        cpu_seconds=sum(c.cpu_seconds for c in containers) if containers else None,
        memory_bytes=sum(c.memory_bytes for c in containers) if containers else None,
        memory_limit_bytes=sum(c.memory_limit_bytes for c in containers) if containers else None,
        db_size_bytes=db.size_bytes if db else None,
        connections=db.connections if db else None,
        max_connections=db.max_connections if db else None,
        commits=db.commits if db else None,
        rollbacks=db.rollbacks if db else None,
        blocks_hit=db.blocks_hit if db else None,
        blocks_read=db.blocks_read if db else None,
        api_up=1.0 if sample.api_up else 0.0,
    )


def metrics_sample(*, runtime: Runtime | None = None, now: datetime | None = None, concurrency: int | None = None) -> SamplePass:
    """One pass: read every running project, at most `concurrency` at once, and write one row each."""
    runtime = runtime or get_runtime()
    now = now or timezone.now()
    started = time.monotonic()
    report = SamplePass()
    fields = ("id", "public_id", "db_port", "api_port", "api_flavour", "db_user", "db_name",
              "monitor_password_encrypted", "databases")  # fmt: skip
    projects = list(Project.objects.filter(status=Project.Status.RUNNING, health__in=SAMPLED_HEALTH).only(*fields))
    targets = [(p, sample_target(p)) for p in projects if p.db_port is not None and p.api_port is not None]
    report.projects = len(targets)
    if targets:
        workers = min(concurrency or settings.BERTH_METRICS_CONCURRENCY, len(targets))
        # The threads only talk to the engine and the projects' servers; the
        # rows are written here, by this thread, in one bulk insert.
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="berth-metrics") as pool:
            samples = list(pool.map(lambda pair: _sample_one(runtime, pair[1]), targets))
        rows, seen = [], []
        for (project, _), sample in zip(targets, samples, strict=True):
            report.engine_calls += sample.engine_calls
            if sample.error:
                report.errors.append(f"{project.public_id}: {sample.error}")
            rows.append(_row(project, now, sample))
            if sample.database is not None and (listed := _databases(sample.database)) != project.databases:
                project.databases = listed
                seen.append(project)
        MetricSample.objects.bulk_create(rows, batch_size=500)
        # The databases on each server, where they changed: the project's answer and page list them.
        Project.objects.bulk_update(seen, ["databases"], batch_size=500)
        report.rows = len(rows)
    report.seconds = time.monotonic() - started
    return report


def _databases(stats: DbStats) -> list[dict[str, object]]:
    return [{"name": name, "size_bytes": size} for name, size in stats.databases]


def _sample_one(runtime: Runtime, target: SampleTarget) -> StackSample:
    try:
        return runtime.stack_sample(target)
    except RuntimeFailure as exc:  # the contract says it does not raise; an engine that vanished still may
        return StackSample(error=str(exc))


def metrics_downsample(*, now: datetime | None = None) -> tuple[int, int]:
    """Roll each finished hour into one row per project; drop raw rows past RAW_KEEP, hourly past HOURLY_KEEP.

    Returns (hourly rows made, rows deleted). An hour is rolled once: the newest
    hourly row says where the last roll ended.
    """
    now = now or timezone.now()
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    raw = MetricSample.objects.filter(period=MetricSample.RAW)
    last = MetricSample.objects.filter(period=MetricSample.HOURLY).aggregate(last=Max("at"))["last"]
    if last is not None:
        hour = last + HOUR
    else:
        first = raw.aggregate(first=Min("at"))["first"]
        hour = first.replace(minute=0, second=0, microsecond=0) if first else this_hour
    hour = max(hour, (now - RAW_KEEP).replace(minute=0, second=0, microsecond=0))
    made = 0
    while hour < this_hour:
        made += _roll(hour)
        hour += HOUR
    deleted, _ = raw.filter(at__lt=now - RAW_KEEP).delete()
    gone, _ = MetricSample.objects.filter(period=MetricSample.HOURLY, at__lt=now - HOURLY_KEEP).delete()
    return made, deleted + gone


def _roll(hour: datetime) -> int:
    # Gauges: the hour's mean (memory, api up) or peak (connections, size);
    # counters: the hour's highest reading, i.e. where the counter stood at its end.
    grouped = (
        MetricSample.objects.filter(period=MetricSample.RAW, at__gte=hour, at__lt=hour + HOUR)
        .values("project_id")
        .annotate(
            memory_bytes_=Avg("memory_bytes"),
            memory_limit_bytes_=Max("memory_limit_bytes"),
            db_size_bytes_=Max("db_size_bytes"),
            connections_=Max("connections"),
            max_connections_=Max("max_connections"),
            api_up_=Avg("api_up"),
            cpu_seconds_=Max("cpu_seconds"),
            commits_=Max("commits"),
            rollbacks_=Max("rollbacks"),
            blocks_hit_=Max("blocks_hit"),
            blocks_read_=Max("blocks_read"),
        )
    )
    rows = []
    for g in grouped:
        memory = g["memory_bytes_"]
        rows.append(
            MetricSample(
                project_id=g["project_id"], at=hour, period=MetricSample.HOURLY,
                memory_bytes=None if memory is None else int(memory), memory_limit_bytes=g["memory_limit_bytes_"],
                db_size_bytes=g["db_size_bytes_"], connections=g["connections_"], max_connections=g["max_connections_"],
                api_up=g["api_up_"], cpu_seconds=g["cpu_seconds_"], commits=g["commits_"], rollbacks=g["rollbacks_"],
                blocks_hit=g["blocks_hit_"], blocks_read=g["blocks_read_"],
            )  # fmt: skip
        )
    MetricSample.objects.bulk_create(rows, batch_size=500)
    return len(rows)


def watch_pass_record(*, kind: str, seconds: float, engine_calls: int, projects: int, now: datetime | None = None) -> None:
    """Remember a watcher pass (sync or metrics) for /metrics: the last one's cost and running totals."""
    now = now or timezone.now()
    values = {"at": now, "seconds": seconds, "engine_calls": engine_calls, "projects": projects}
    updated = WatchPass.objects.filter(kind=kind).update(
        **values, passes=F("passes") + 1, engine_calls_total=F("engine_calls_total") + engine_calls
    )
    if not updated:
        try:
            WatchPass.objects.create(kind=kind, passes=1, engine_calls_total=engine_calls, **values)
        except IntegrityError:
            pass  # made a moment ago by another watcher: this pass goes unrecorded


def metrics_watch(*, stop: threading.Event, interval_s: float | None = None, runtime: Runtime | None = None,
                  log: Callable[[str], None] = logger.info) -> None:  # fmt: skip
    """Sample every `interval_s` (BERTH_METRICS_SECONDS) until `stop`; a failed pass is logged, never the end."""
    interval = settings.BERTH_METRICS_SECONDS if interval_s is None else interval_s
    if interval <= 0:
        return
    try:
        while not stop.is_set():
            close_old_connections()
            started = time.monotonic()
            try:
                report = metrics_sample(runtime=runtime)
                metrics_downsample()
                watch_pass_record(kind="metrics", seconds=report.seconds, engine_calls=report.engine_calls, projects=report.projects)
                if report.errors:
                    log(f"metrics: {len(report.errors)} of {report.projects} project(s) partly unread, e.g. {report.errors[0]}")
            except Exception as exc:  # a bad pass (Berth's database away) must not end the sampling
                logger.exception("metrics pass failed")
                log(f"metrics pass failed: {exc}")
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
    finally:
        connection.close()


def metrics_thread(*, stop: threading.Event, runtime: Runtime | None = None, log: Callable[[str], None] = logger.info) -> threading.Thread | None:
    """Start `metrics_watch` in a daemon thread (None when BERTH_METRICS_SECONDS is 0)."""
    if settings.BERTH_METRICS_SECONDS <= 0:
        return None
    thread = threading.Thread(target=metrics_watch, kwargs={"stop": stop, "runtime": runtime, "log": log}, name="berth-metrics", daemon=True)
    thread.start()
    return thread


# --- reading back: series for a chart or the API --------------------------------------


@dataclass(frozen=True)
class MetricsSeries:
    range: str
    step_seconds: int
    series: dict[str, list[Point]]
    start: int  # the range's first and last second (the chart's x axis)
    end: int

    def latest(self, name: str) -> float | None:
        points = self.series.get(name) or []
        return points[-1][1] if points else None


def range_check(value: str | None) -> str:
    """The range asked for, "1h" when none; InvalidInput naming the choices otherwise."""
    if value is None or value == "":
        return "1h"
    if value not in RANGES:
        raise InvalidInput("range", f"must be one of {', '.join(RANGE_NAMES)}")
    return value


def _points(rows: Sequence[tuple[object, ...]]) -> dict[str, list[Point]]:
    """Series from rows in time order: gauges as they are, rates and the hit ratio from each row and the one before."""
    out: dict[str, list[Point]] = {name: [] for name in SERIES}
    index = {name: i for i, name in enumerate(FIELDS)}
    previous: tuple[object, ...] | None = None
    for row in rows:
        at = row[0]
        assert isinstance(at, datetime)
        t = int(at.timestamp())
        for name in GAUGES:
            value = row[index[name]]
            if value is not None:
                assert isinstance(value, int | float)
                out[name].append((t, float(value)))
        if previous is not None:
            before = previous[0]
            assert isinstance(before, datetime)
            dt = (at - before).total_seconds()

            def delta(name: str) -> float | None:
                a, b = previous[index[name]], row[index[name]]  # type: ignore[index]  # previous is set here
                if a is None or b is None:
                    return None
                assert isinstance(a, int | float) and isinstance(b, int | float)
                d = float(b) - float(a)
                return d if d >= 0 else None  # a counter that went back: the container or server restarted

            if dt > 0:
                for series, counter, scale in (("cpu_percent", "cpu_seconds", 100.0), ("commits_per_s", "commits", 1.0),
                                               ("rollbacks_per_s", "rollbacks", 1.0)):  # fmt: skip
                    if (d := delta(counter)) is not None:
                        out[series].append((t, round(d / dt * scale, 4)))
                hit, read = delta("blocks_hit"), delta("blocks_read")
                if hit is not None and read is not None and hit + read > 0:
                    out["cache_hit_ratio"].append((t, round(hit / (hit + read), 4)))
        previous = row
    return out


def _bucketed(points: list[Point], step: int) -> list[Point]:
    """Each `step` seconds' points as one: their mean, at the bucket's start."""
    buckets: dict[int, list[float]] = {}
    for t, v in points:
        buckets.setdefault(t - t % step, []).append(v)
    return [(t, round(sum(vs) / len(vs), 4)) for t, vs in sorted(buckets.items())]


def metrics_series(*, project: Project, range_name: str, now: datetime | None = None) -> MetricsSeries:
    """The project's series over `range_name` (1h, 24h, 7d); points are [unix seconds, value]."""
    span, period, step = RANGES[range_check(range_name)]
    now = now or timezone.now()
    start = now - span
    # One row before the range too: the first point's rate needs it.
    margin = timedelta(seconds=period or max(settings.BERTH_METRICS_SECONDS, 1) * 2)
    rows = list(
        MetricSample.objects.filter(project=project, period=period, at__gte=start - margin, at__lte=now).order_by("at").values_list(*FIELDS)
    )
    first = int(start.timestamp())
    series = {name: [(t, v) for t, v in points if t >= first] for name, points in _points(rows).items()}
    step_seconds = step or settings.BERTH_METRICS_SECONDS or 30
    if step and period == MetricSample.RAW:
        series = {name: _bucketed(points, step) for name, points in series.items()}
    return MetricsSeries(range=range_name, step_seconds=step_seconds, series=series, start=first, end=int(now.timestamp()))


def activity_sparklines(*, projects: Iterable[Project], now: datetime | None = None, points: int = 12) -> dict[int, list[float]]:
    """Commits per second over the last hour, `points` values per project (by row id): one query for a page of projects."""
    now = now or timezone.now()
    ids = [p.pk for p in projects]
    start = now - timedelta(hours=1)
    step = 3600 / points
    by_project: dict[int, list[tuple[datetime, int]]] = {}
    rows = (
        MetricSample.objects.filter(project_id__in=ids, period=MetricSample.RAW, at__gte=start, commits__isnull=False)
        .order_by("project_id", "at")
        .values_list("project_id", "at", "commits")
    )
    for project_id, at, commits in rows:
        if commits is None:
            continue
        by_project.setdefault(project_id, []).append((at, commits))
    out: dict[int, list[float]] = {}
    for project_id, samples in by_project.items():
        sums = [0.0] * points
        for (t0, c0), (t1, c1) in zip(samples, samples[1:], strict=False):
            dt = (t1 - t0).total_seconds()
            if dt > 0 and c1 >= c0:
                slot = min(points - 1, int((t1 - start).total_seconds() / step))
                sums[slot] = max(sums[slot], (c1 - c0) / dt)
        out[project_id] = sums
    return out


# --- what /metrics reports (projects/prometheus.py turns it into the text format) ----------


@dataclass(frozen=True)
class ProjectLatest:
    project_id: str
    name: str
    values: dict[str, float]  # GAUGES and COUNTERS of the newest sample, those that were read


@dataclass(frozen=True)
class OperationStats:
    kind: str
    outcomes: dict[str, int]  # succeeded, failed -> count
    buckets: list[tuple[float, int]]  # (upper bound in seconds, operations that took at most that), +Inf last
    duration_sum: float


# Operation duration histogram buckets (seconds): a start takes ~2 s, a backup of a large database minutes.
DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


@dataclass(frozen=True)
class BerthSnapshot:
    projects: list[ProjectLatest]
    operations: list[OperationStats]
    in_flight: dict[str, int]  # queued, running -> count
    passes: list[WatchPass]
    sampled_at: datetime | None
    pools: list[Pool] = field(default_factory=list)
    security_events: dict[str, int] = field(default_factory=dict)  # kind -> repairs the bootstrap's heal made (operations/tenant_safety.py)


def metrics_snapshot() -> BerthSnapshot:
    """Everything /metrics reports, from Berth's database only (a handful of queries, no engine call)."""
    newest = MetricSample.objects.filter(period=MetricSample.RAW).aggregate(at=Max("at"))["at"]
    latest: list[ProjectLatest] = []
    if newest is not None:
        # Every row of a pass shares its time: the newest pass is one indexed look-up.
        rows = (
            MetricSample.objects.filter(period=MetricSample.RAW, at=newest, project__status=Project.Status.RUNNING)
            .order_by("project__public_id")
            .values_list("project__public_id", "project__name", *GAUGES, *COUNTERS)
        )
        names = (*GAUGES, *COUNTERS)
        for public_id, name, *values in rows:
            latest.append(ProjectLatest(public_id, name, {n: float(v) for n, v in zip(names, values, strict=True) if v is not None}))

    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    settled = Operation.objects.filter(state__in=[Operation.State.SUCCEEDED, Operation.State.FAILED])
    outcomes: dict[str, dict[str, int]] = {}
    for kind, state, count in settled.values_list("kind", "state").annotate(n=Count("id")).order_by("kind", "state"):
        outcomes.setdefault(kind, {})[state] = count
    timed = settled.filter(started_at__isnull=False, finished_at__isnull=False).annotate(d=duration)
    aggregates = {f"le{i}": Count("id", filter=Q(d__lte=timedelta(seconds=b))) for i, b in enumerate(DURATION_BUCKETS)}
    histograms: dict[str, OperationStats] = {}
    for found in timed.values("kind").annotate(total=Count("id"), sum=Sum("d"), **aggregates).order_by("kind"):
        row: dict[str, object] = dict(found)  # the bucket keys are made above, not literal: read as a plain dict
        total_time = row["sum"]
        seconds = total_time.total_seconds() if isinstance(total_time, timedelta) else 0.0
        kind = str(row["kind"])
        buckets = [(b, _count(row[f"le{i}"])) for i, b in enumerate(DURATION_BUCKETS)] + [(float("inf"), _count(row["total"]))]
        histograms[kind] = OperationStats(kind, outcomes.get(kind, {}), buckets, seconds)
    operations = [
        histograms.get(kind) or OperationStats(kind, counts, [(float("inf"), 0)], 0.0) for kind, counts in sorted(outcomes.items())
    ]
    in_flight: dict[str, int] = {str(state): 0 for state in Operation.IN_FLIGHT}
    for state, count in Operation.objects.filter(state__in=Operation.IN_FLIGHT).values_list("state").annotate(n=Count("id")).order_by():
        in_flight[str(state)] = count
    security = dict(SecurityEvent.objects.values_list("kind").annotate(n=Count("id")).order_by())
    return BerthSnapshot(projects=latest, operations=operations, in_flight=in_flight, passes=list(WatchPass.objects.order_by("kind")),
                         sampled_at=newest, pools=pool_status(), security_events=security)  # fmt: skip


def _count(value: object) -> int:
    assert isinstance(value, int)
    return value
