"""The Prometheus seam: the only module that imports prometheus_client.

A collector made per scrape reads Berth's database (services/fleet/metrics.py's
snapshot) and the client library writes the text format: no global registry,
no state kept between scrapes, so every web process answers the same.
"""

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from projects.services.fleet.metrics import BerthSnapshot, metrics_snapshot

# Per project: (name in the snapshot, metric name, kind, help)
PROJECT_METRICS = (
    ("cpu_seconds", "berth_project_cpu_seconds", "counter", "CPU time of the project's db and api containers since they started"),
    ("memory_bytes", "berth_project_memory_bytes", "gauge", "Memory in use by the db and api containers (page cache left out)"),
    ("memory_limit_bytes", "berth_project_memory_limit_bytes", "gauge", "Memory limit of the db and api containers"),
    ("db_size_bytes", "berth_project_db_size_bytes", "gauge", "pg_database_size of the project's database"),
    ("connections", "berth_project_connections", "gauge", "Client backends on the project's server"),
    ("max_connections", "berth_project_max_connections", "gauge", "The server's max_connections"),
    ("commits", "berth_project_commits", "counter", "Transactions committed (pg_stat_database.xact_commit)"),
    ("rollbacks", "berth_project_rollbacks", "counter", "Transactions rolled back (pg_stat_database.xact_rollback)"),
    ("blocks_hit", "berth_project_blocks_hit", "counter", "Blocks found in shared buffers (pg_stat_database.blks_hit)"),
    ("blocks_read", "berth_project_blocks_read", "counter", "Blocks read from disk (pg_stat_database.blks_read)"),
    ("api_up", "berth_project_api_up", "gauge", "1 when the project's api answered its probe at the last sample"),
)
PROJECT_LABELS = ["project_id", "name"]


class BerthCollector(Collector):
    def __init__(self, snapshot: BerthSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        for key, name, kind, help_text in PROJECT_METRICS:
            family: GaugeMetricFamily | CounterMetricFamily
            family = CounterMetricFamily(name, help_text, labels=PROJECT_LABELS) if kind == "counter" else GaugeMetricFamily(name, help_text, labels=PROJECT_LABELS)
            for project in snap.projects:
                if key in project.values:
                    family.add_metric([project.project_id, project.name], project.values[key])
            yield family
        if snap.sampled_at is not None:
            yield GaugeMetricFamily("berth_metrics_sampled_timestamp_seconds", "When the newest metrics pass ran", value=snap.sampled_at.timestamp())

        outcomes = CounterMetricFamily("berth_operations", "Settled operations by kind and outcome", labels=["kind", "outcome"])
        durations = HistogramMetricFamily("berth_operation_duration_seconds", "How long settled operations ran, by kind", labels=["kind"])
        for op in snap.operations:
            for outcome, count in sorted(op.outcomes.items()):
                outcomes.add_metric([op.kind, outcome], count)
            buckets = [("+Inf" if bound == float("inf") else repr(bound), count) for bound, count in op.buckets]
            durations.add_metric([op.kind], buckets, op.duration_sum)
        yield outcomes
        yield durations
        yield GaugeMetricFamily("berth_operation_queue_depth", "Operations queued, not yet picked up by a worker", value=snap.in_flight.get("queued", 0))
        yield GaugeMetricFamily("berth_operations_running", "Operations a worker is running", value=snap.in_flight.get("running", 0))

        loop = ["loop"]
        seconds = GaugeMetricFamily("berth_watch_pass_seconds", "Duration of the watcher's last pass (sync, metrics)", labels=loop)
        calls = GaugeMetricFamily("berth_watch_pass_engine_calls", "Engine calls of the watcher's last pass", labels=loop)
        projects = GaugeMetricFamily("berth_watch_pass_projects", "Projects the watcher's last pass covered", labels=loop)
        passes = CounterMetricFamily("berth_watch_passes", "Passes the watcher has made", labels=loop)
        calls_total = CounterMetricFamily("berth_watch_engine_calls", "Engine calls the watcher's passes have made", labels=loop)
        last = GaugeMetricFamily("berth_watch_pass_timestamp_seconds", "When the watcher's last pass ran", labels=loop)
        for p in snap.passes:
            seconds.add_metric([p.kind], p.seconds)
            calls.add_metric([p.kind], p.engine_calls)
            projects.add_metric([p.kind], p.projects)
            passes.add_metric([p.kind], p.passes)
            calls_total.add_metric([p.kind], p.engine_calls_total)
            last.add_metric([p.kind], p.at.timestamp())
        yield from (seconds, calls, projects, passes, calls_total, last)

        pool = ["postgres_version", "api"]
        target = GaugeMetricFamily("berth_pool_target", "Stacks the warm pool keeps ready (BERTH_WARM_POOL)", labels=pool)
        ready = GaugeMetricFamily("berth_pool_ready", "Pooled stacks ready to be claimed", labels=pool)
        filling = GaugeMetricFamily("berth_pool_filling", "Pooled stacks being made", labels=pool)
        for pooled in snap.pools:
            which = [pooled.postgres_version, pooled.api]
            target.add_metric(which, pooled.target)
            ready.add_metric(which, pooled.ready)
            filling.add_metric(which, pooled.filling)
        yield from (target, ready, filling)


def exposition() -> tuple[bytes, str]:
    """Berth's metrics in the Prometheus text format, and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BerthCollector(metrics_snapshot()))
    return generate_latest(registry), CONTENT_TYPE_LATEST
