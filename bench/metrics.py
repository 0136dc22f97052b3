"""metrics: the sampler's cost per pass (engine calls, time, rows written per hour) at 10, 100 and 1,000 projects.

Two parts, reported apart:

- real: `--real` (10) running stacks on the engine, sampled by DockerRuntime;
  engine calls are counted at the SDK's HTTP layer (bench/sync.py's counter),
  and the time is the whole pass: two one-shot stats calls, one query over the
  published port and one api request per project, `BERTH_METRICS_CONCURRENCY`
  at once, plus the bulk insert.
- rows: `--sizes` (100, 1000) running project rows on FakeRuntime, which answers
  in memory: this measures Berth's own side of a pass (the read of the rows,
  decrypting each admin password, the thread pool, the insert) and the engine
  calls DockerRuntime would make (two a project, by its own count). The pass
  time those sizes would take on the engine is the real part's per-project
  time scaled up; it is printed as a projection, not a measurement.

Also measured: one hour's roll-up (`metrics_downsample`) with a full hour of
raw rows at the largest size, and the `/v1/.../metrics?range=24h` read.

    uv run python bench/metrics.py [--real 10] [--sizes 100,1000] [--passes 5]
"""

import argparse
import math
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RUN_ID, cleanup_on_exit, django_setup, summary, table, write_results  # noqa: E402
from bench.sync import count_engine_calls  # noqa: E402

# Away from the development Berth's and other benchmarks' ranges: these are the
# metrics helper's own test ranges and a /24 of its own network pool.
DB_PORTS, API_PORTS = (20050, 20099), (20150, 20199)
SUBNETS = [f"10.201.250.{16 * i}/28" for i in range(16)]


def real_part(owner, count: int, passes: int, concurrency: int) -> dict:
    from bench.references import free_port
    from projects.models import MetricSample, Project
    from projects.runtime.docker import DockerRuntime
    from projects.stack.spec import stack_spec
    from projects.services.fleet.metrics import metrics_sample

    runtime = DockerRuntime(pull_images=False)
    taken: set[int] = set()
    projects = []
    for n in range(count):
        project = Project(owner=owner, name=f"real {n}", postgres_version="17", api_flavour="postgraphile", status="running", health="healthy")
        project.db_password, project.jwt_secret = "bench-password", "j" * 48
        project.admin_password, project.authenticator_password = "bench-admin", "bench-auth"
        project.db_port, project.api_port = free_port(*DB_PORTS, taken), free_port(*API_PORTS, taken)
        project.network_subnet = SUBNETS[n]
        project.save()
        projects.append(project)
    for project in projects:
        runtime.stack_up(stack_spec(project))
    for project in projects:
        runtime.stack_wait_ready(stack_spec(project), timeout_s=180)
    print(f"{count} real stacks ready")
    calls = count_engine_calls(runtime)
    times, call_counts, errors = [], [], []
    for _ in range(passes):
        calls.clear()
        began = time.perf_counter()
        report = metrics_sample(runtime=runtime, concurrency=concurrency)
        times.append(time.perf_counter() - began)
        call_counts.append(len(calls))
        errors += report.errors
        time.sleep(1)  # distinct sample times
    rows = MetricSample.objects.filter(project__in=projects).count()
    return {"projects": count, "stats": summary(times), "engine_calls": call_counts, "rows": rows, "errors": errors[:5],
            "calls_sample": sorted(set(c.split("?")[0].rsplit("/", 2)[-1] for c in calls))}  # fmt: skip


def rows_part(owner, size: int, passes: int, concurrency: int) -> dict:
    from bench.dashboard import fill
    from projects.models import Project
    from projects.runtime.base import ContainerState, container_name
    from projects.runtime.fake import FakeRuntime
    from projects.services.fleet.metrics import metrics_sample

    fill(size, owner)
    fake = FakeRuntime()
    for public_id in Project.objects.filter(status="running").values_list("public_id", flat=True):
        for service in ("db", "api"):
            name = container_name(public_id, service)
            fake.containers_by_name[name] = ContainerState(name=name, project_id=public_id, service=service, status="running")
    times, calls = [], []
    for _ in range(passes):
        began = time.perf_counter()
        report = metrics_sample(runtime=fake, concurrency=concurrency)
        times.append(time.perf_counter() - began)
        calls.append(report.engine_calls)
    return {"projects": report.projects, "stats": summary(times), "engine_calls": calls, "rows": report.rows}


def rollup_part(size: int, interval: int) -> dict:
    """One finished hour of raw rows for `size` projects, rolled up once."""
    from django.utils import timezone

    from projects.models import MetricSample, Project
    from projects.services.fleet.metrics import metrics_downsample

    MetricSample.objects.all().delete()
    hour = (timezone.now() - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    ids = list(Project.objects.filter(status="running").values_list("id", flat=True)[:size])
    per_hour = 3600 // interval
    # Every column filled with values of a realistic size, as a pass writes them.
    rows = [
        MetricSample(project_id=pid, at=hour + timedelta(seconds=i * interval), cpu_seconds=1234.5 + i, memory_bytes=150 * 2**20,
                     memory_limit_bytes=768 * 2**20, db_size_bytes=30 * 2**20, connections=7, max_connections=100,
                     commits=10_000_000 + i, rollbacks=1000 + i, blocks_hit=900_000_000 + i, blocks_read=2_000_000 + i, api_up=1.0)
        for pid in ids for i in range(per_hour)
    ]  # fmt: skip
    began = time.perf_counter()
    MetricSample.objects.bulk_create(rows, batch_size=2000)
    insert_s = time.perf_counter() - began
    began = time.perf_counter()
    made, _ = metrics_downsample(now=hour + timedelta(hours=1, minutes=1))
    rollup_s = time.perf_counter() - began
    return {"projects": len(ids), "raw_rows": len(rows), "hourly_rows": made, "rollup_s": rollup_s, "insert_s": insert_s,
            "bytes_per_row": _bytes_per_row()}  # fmt: skip


def _bytes_per_row() -> float | None:
    """Table and index bytes per MetricSample row on SQLite (dbstat), or on PostgreSQL (pg_total_relation_size)."""
    from django.db import connection

    from projects.models import MetricSample

    count = MetricSample.objects.count()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_total_relation_size('projects_metricsample')")
        else:
            try:
                cursor.execute("SELECT sum(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master WHERE tbl_name = 'projects_metricsample')")
            except Exception:
                return None
        (size,) = cursor.fetchone()
    return round(size / count, 1) if count and size else None


def series_part(requests: int) -> dict:
    from projects.models import Project
    from projects.services.fleet.metrics import metrics_series

    project = Project.objects.filter(status="running").first()
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        metrics_series(project=project, range_name="24h")
        times.append(time.perf_counter() - began)
    return summary(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--real", type=int, default=10)
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    django_setup(BERTH_DATA_DIR=f"/tmp/berth-bench-metrics-{RUN_ID}")
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection

    owner = get_user_model().objects.create_user("bench")
    interval, concurrency = settings.BERTH_METRICS_SECONDS or 30, settings.BERTH_METRICS_CONCURRENCY
    results: dict = {"interval_s": interval, "concurrency": concurrency, "database": connection.vendor, "load_before": os.getloadavg()}
    with cleanup_on_exit():
        results["real"] = real_part(owner, args.real, args.passes, concurrency) if args.real else None
    from projects.models import Project

    Project.objects.filter(name__startswith="real ").delete()  # their stacks are gone; the row parts start empty
    results["rows"] = [rows_part(owner, int(size), args.passes, concurrency) for size in args.sizes.split(",")]
    results["rollup"] = rollup_part(max(int(s) for s in args.sizes.split(",")), interval)
    results["series_24h"] = series_part(20)
    results["load_after"] = os.getloadavg()

    # Pass time is latency-bound (each project waits about one engine stats tick,
    # `concurrency` projects at a time): project it by rounds of `concurrency`.
    per_round = None
    lines = []
    real = results["real"]
    if real:
        per_round = real["stats"]["p50"] / math.ceil(real["projects"] / concurrency)
        lines.append([f"{real['projects']} (real stacks)", max(real["engine_calls"]), real["stats"]["p50"], real["stats"]["p95"],
                      "measured", real["projects"] * (3600 // interval + 1)])  # fmt: skip
    for part in results["rows"]:
        projected = f"~{per_round * math.ceil(part['projects'] / concurrency):.0f} s on the engine (projected)" if per_round else "—"
        lines.append([f"{part['projects']} (rows, FakeRuntime)", max(part["engine_calls"]), part["stats"]["p50"], part["stats"]["p95"],
                      projected, part["projects"] * (3600 // interval + 1)])  # fmt: skip
    rendered = table(
        f"metrics: one sampling pass ({results['database']}, interval {interval} s, {concurrency} at once)",
        ["projects", "engine calls per pass", "p50 s", "p95 s", "pass time at that size", "rows written per hour"],
        lines,
    )
    roll = results["rollup"]
    rendered += (
        f"\n\nRoll-up of one hour: {roll['raw_rows']} raw rows of {roll['projects']} projects into {roll['hourly_rows']} hourly rows "
        f"in {roll['rollup_s']:.3f} s. Series read (24h, one project): p50 {results['series_24h']['p50'] * 1000:.1f} ms. "
        f"Storage: {roll['bytes_per_row']} bytes per row, indexes included. "
        f"Load average before/after: {results['load_before'][0]:.1f} / {results['load_after'][0]:.1f} on {os.cpu_count()} cores."
    )
    write_results("metrics", results, rendered)


if __name__ == "__main__":
    main()
