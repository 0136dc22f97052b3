"""services/fleet/metrics.py on FakeRuntime: sampling, downsampling, retention, series, the /metrics snapshot."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from projects.models import MetricSample, Operation, Project, WatchPass
from projects.runtime import DbStats
from projects.services.lifecycle import requests as lifecycle
from projects.services.errors import InvalidInput
from projects.services.fleet.metrics import (
    SERIES,
    activity_sparklines,
    metrics_downsample,
    metrics_sample,
    metrics_series,
    metrics_snapshot,
    metrics_watch,
    range_check,
    watch_pass_record,
)

T0 = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)


def running_project(user, name: str = "m") -> Project:
    return Project.objects.get(pk=lifecycle.project_create(owner=user, name=name).project_id)


def sample_at(project: Project, at: datetime, **values) -> MetricSample:
    defaults = dict(cpu_seconds=0.0, memory_bytes=100, memory_limit_bytes=1000, db_size_bytes=10, connections=2, max_connections=100,
                    commits=0, rollbacks=0, blocks_hit=0, blocks_read=0, api_up=1.0)  # fmt: skip
    return MetricSample.objects.create(project=project, at=at, **{**defaults, **values})


# --- sampling --------------------------------------------------------------------


def test_a_pass_writes_one_row_per_running_project_with_two_engine_calls_each(user, fake_runtime):
    projects = [running_project(user, f"p{i}") for i in range(3)]
    report = metrics_sample(now=T0)
    assert (report.projects, report.rows, report.engine_calls) == (3, 3, 6)
    assert fake_runtime.calls["stack_sample"] == 3
    row = MetricSample.objects.get(project=projects[0])
    assert row.at == T0 and row.period == MetricSample.RAW
    # db + api containers, as FakeRuntime reports them
    assert row.memory_bytes == (48 + 64) * 2**20 and row.memory_limit_bytes == (512 + 256) * 2**20
    assert row.max_connections == 100 and row.connections == 3 and row.api_up == 1.0 and row.commits == 10


def test_stopped_and_deleted_projects_are_not_read_at_all(user, fake_runtime):
    stopped, deleted, running = running_project(user, "a"), running_project(user, "b"), running_project(user, "c")
    lifecycle.project_stop(project=stopped)
    lifecycle.project_delete(project=deleted)
    fake_runtime.calls.clear()
    report = metrics_sample(now=T0)
    assert report.projects == 1 and fake_runtime.calls["stack_sample"] == 1
    assert list(MetricSample.objects.values_list("project_id", flat=True)) == [running.pk]


def test_a_project_whose_database_does_not_answer_gets_a_row_with_what_could_be_read(user, fake_runtime):
    project = running_project(user)
    fake_runtime.set_status(f"project_{project.public_id}_db", "exited")
    report = metrics_sample(now=T0)
    row = MetricSample.objects.get(project=project)
    assert row.commits is None and row.max_connections is None and row.api_up == 1.0
    assert report.errors and project.public_id in report.errors[0]


def test_sampling_runs_projects_concurrently_but_never_more_than_the_bound(user, fake_runtime, settings):
    for i in range(6):
        running_project(user, f"p{i}")
    active, peak, lock = 0, 0, threading.Lock()
    original = fake_runtime.stack_sample
    gate = threading.Barrier(2, timeout=5)

    def slow(target):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            gate.wait()  # two at once must be possible, or this times out
        except threading.BrokenBarrierError:
            pass
        with lock:
            active -= 1
        return original(target)

    fake_runtime.stack_sample = slow
    report = metrics_sample(now=T0, concurrency=2)
    assert report.rows == 6 and peak == 2


@pytest.mark.django_db(transaction=True)
def test_the_watch_samples_until_stopped_and_records_its_pass(user, fake_runtime):
    running_project(user)
    stop = threading.Event()
    original = fake_runtime.stack_sample

    def last(target):
        stop.set()  # the first pass is the last
        return original(target)

    fake_runtime.stack_sample = last
    metrics_watch(stop=stop, interval_s=0.05, runtime=fake_runtime)
    assert MetricSample.objects.count() == 1
    recorded = WatchPass.objects.get(kind="metrics")
    assert (recorded.passes, recorded.engine_calls, recorded.projects) == (1, 2, 1)


def test_a_zero_interval_turns_sampling_off(fake_runtime):
    stop = threading.Event()
    metrics_watch(stop=stop, interval_s=0, runtime=fake_runtime)  # returns at once
    assert fake_runtime.calls["stack_sample"] == 0


# --- downsampling and retention ----------------------------------------------------


def test_a_finished_hour_is_rolled_into_one_row_per_project_once(user):
    project = running_project(user)
    for minute, (memory, commits, up) in enumerate([(100, 10, 1.0), (300, 40, 0.0), (200, 70, 1.0), (200, 90, 1.0)]):
        sample_at(project, T0 + timedelta(minutes=minute * 15), memory_bytes=memory, commits=commits, connections=minute, api_up=up)
    sample_at(project, T0 + timedelta(hours=1, minutes=5), commits=100)  # the current hour: not rolled yet
    made, deleted = metrics_downsample(now=T0 + timedelta(hours=1, minutes=10))
    assert (made, deleted) == (1, 0)
    hourly = MetricSample.objects.get(period=MetricSample.HOURLY)
    assert hourly.at == T0 and hourly.memory_bytes == 200 and hourly.commits == 90 and hourly.connections == 3 and hourly.api_up == 0.75
    assert metrics_downsample(now=T0 + timedelta(hours=1, minutes=20)) == (0, 0)  # already rolled
    assert metrics_downsample(now=T0 + timedelta(hours=2, minutes=1))[0] == 1  # the next hour, once it ends


def test_raw_rows_go_after_24_hours_and_hourly_rows_after_30_days(user):
    project = running_project(user)
    sample_at(project, T0)
    sample_at(project, T0 + timedelta(hours=23))
    MetricSample.objects.create(project=project, at=T0 - timedelta(days=31), period=MetricSample.HOURLY, commits=1)
    MetricSample.objects.create(project=project, at=T0 - timedelta(days=28), period=MetricSample.HOURLY, commits=2)
    metrics_downsample(now=T0 + timedelta(hours=24, minutes=30))
    raw = list(MetricSample.objects.filter(period=MetricSample.RAW).values_list("at", flat=True))
    assert raw == [T0 + timedelta(hours=23)]
    hourly = set(MetricSample.objects.filter(period=MetricSample.HOURLY).values_list("at", flat=True))
    assert T0 - timedelta(days=31) not in hourly and T0 - timedelta(days=28) in hourly
    assert T0 in hourly  # rolled before its raw rows went


def test_rows_per_project_stay_bounded_over_a_month_of_passes(user, settings):
    # 31 days at one pass an hour (a stand-in for the interval: the bound is the same shape).
    project = running_project(user)
    for hour in range(31 * 24):
        at = T0 + timedelta(hours=hour)
        sample_at(project, at, commits=hour)
        metrics_downsample(now=at)
    raw = MetricSample.objects.filter(project=project, period=MetricSample.RAW).count()
    hourly = MetricSample.objects.filter(project=project, period=MetricSample.HOURLY).count()
    assert raw <= 25 and hourly <= 30 * 24 + 1


def test_a_purged_project_is_not_read_and_its_samples_age_out(user):
    project = running_project(user)
    sample_at(project, T0)
    lifecycle.project_delete(project=project)
    project.refresh_from_db()
    lifecycle.project_purge(project=project, confirm=project.public_id)
    assert metrics_sample(now=T0 + timedelta(minutes=1)).projects == 0
    metrics_downsample(now=T0 + timedelta(days=31, hours=1))
    assert not MetricSample.objects.filter(project=project).exists()


# --- series ------------------------------------------------------------------------


def test_series_derive_rates_and_the_hit_ratio_from_counters(user):
    project = running_project(user)
    now = T0 + timedelta(minutes=2)
    sample_at(project, T0, cpu_seconds=10.0, commits=100, rollbacks=1, blocks_hit=900, blocks_read=100)
    sample_at(project, T0 + timedelta(seconds=30), cpu_seconds=25.0, commits=400, rollbacks=4, blocks_hit=1800, blocks_read=200)
    result = metrics_series(project=project, range_name="1h", now=now)
    t1 = int((T0 + timedelta(seconds=30)).timestamp())
    assert set(result.series) == set(SERIES)
    assert result.series["commits_per_s"] == [(t1, 10.0)]
    assert result.series["rollbacks_per_s"] == [(t1, 0.1)]
    assert result.series["cpu_percent"] == [(t1, 50.0)]
    assert result.series["cache_hit_ratio"] == [(t1, 0.9)]
    assert [v for _, v in result.series["memory_bytes"]] == [100.0, 100.0]
    assert result.step_seconds == 30 and result.latest("max_connections") == 100.0


def test_a_counter_that_went_back_gives_no_rate_rather_than_a_negative_one(user):
    project = running_project(user)
    sample_at(project, T0, commits=500)
    sample_at(project, T0 + timedelta(seconds=30), commits=3)  # the server restarted
    sample_at(project, T0 + timedelta(seconds=60), commits=33)
    series = metrics_series(project=project, range_name="1h", now=T0 + timedelta(minutes=1)).series["commits_per_s"]
    assert [v for _, v in series] == [1.0]


def test_24h_averages_raw_samples_into_five_minute_points_and_7d_reads_hourly_rows(user):
    project = running_project(user)
    for i in range(10):  # 10 samples, 60 s apart: two 5-minute buckets
        sample_at(project, T0 + timedelta(minutes=i), connections=i)
    day = metrics_series(project=project, range_name="24h", now=T0 + timedelta(minutes=11))
    assert day.step_seconds == 300 and [v for _, v in day.series["connections"]] == [2.0, 7.0]
    MetricSample.objects.create(project=project, at=T0 - timedelta(days=2), period=MetricSample.HOURLY, connections=42)
    week = metrics_series(project=project, range_name="7d", now=T0 + timedelta(minutes=11))
    assert week.step_seconds == 3600 and [v for _, v in week.series["connections"]] == [42.0]


def test_an_unknown_range_is_refused_naming_the_choices():
    assert range_check(None) == "1h"
    with pytest.raises(InvalidInput, match="1h, 24h, 7d"):
        range_check("2h")


def test_sparklines_are_the_commit_rate_over_the_last_hour_from_one_query(user, django_assert_num_queries):
    a, b = running_project(user, "a"), running_project(user, "b")
    for i in range(4):
        sample_at(a, T0 + timedelta(minutes=50 + i * 3), commits=i * 180)  # 1 commit/s
    with django_assert_num_queries(1):
        lines = activity_sparklines(projects=[a, b], now=T0 + timedelta(hours=1))
    assert b.pk not in lines and max(lines[a.pk]) == pytest.approx(1.0) and len(lines[a.pk]) == 12


# --- what /metrics reads ------------------------------------------------------------


def test_the_snapshot_has_the_newest_pass_operations_and_the_watch_passes(user, fake_runtime):
    project = running_project(user)
    metrics_sample(now=T0)
    fake_runtime.db_stats[project.public_id] = DbStats(1, 2, 100, 777, 7, 10, 1)
    metrics_sample(now=T0 + timedelta(seconds=30))
    watch_pass_record(kind="sync", seconds=0.25, engine_calls=1, projects=1)
    watch_pass_record(kind="sync", seconds=0.5, engine_calls=1, projects=1)
    snapshot = metrics_snapshot()
    [latest] = snapshot.projects
    assert latest.project_id == project.public_id and latest.values["commits"] == 777
    [create] = [o for o in snapshot.operations if o.kind == "create"]
    assert create.outcomes == {"succeeded": 1} and create.buckets[-1] == (float("inf"), 1)
    assert snapshot.in_flight == {"queued": 0, "running": 0}
    sync = WatchPass.objects.get(kind="sync")
    assert (sync.passes, sync.engine_calls_total, sync.seconds) == (2, 2, 0.5)


def test_the_snapshot_counts_queued_operations_as_queue_depth(user):
    project = running_project(user)
    Operation.objects.create(project=project, kind="stop", state=Operation.State.QUEUED)
    assert metrics_snapshot().in_flight["queued"] == 1
