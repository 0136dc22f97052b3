"""What Berth observes and keeps beside its projects: metric samples, the watcher's passes, forgotten nodes, security events.

Models of the `projects` app like those in models.py, which lists them all;
their relations name the project's models by label, so this module imports
nothing of models.py (no import cycle).
"""

from django.conf import settings
from django.db import models


class MetricSample(models.Model):
    """One project's numbers at one moment (`period` 0), or one hour of them (`period` 3600): services/fleet/metrics.py.

    Counters (`cpu_seconds`, `commits`, `rollbacks`, `blocks_*`) are cumulative,
    as the engine and pg_stat_database give them: rates and the cache hit ratio
    are derived from two rows. A field is null when that part could not be read.
    """

    RAW = 0
    HOURLY = 3600

    # No index of its own: (project, period, at) below starts with it.
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="metric_samples", db_index=False)
    at = models.DateTimeField()
    period = models.PositiveIntegerField(default=RAW)
    cpu_seconds = models.FloatField(null=True)  # db + api containers
    memory_bytes = models.BigIntegerField(null=True)  # db + api
    memory_limit_bytes = models.BigIntegerField(null=True)  # db + api
    db_size_bytes = models.BigIntegerField(null=True)
    connections = models.IntegerField(null=True)
    max_connections = models.IntegerField(null=True)
    commits = models.BigIntegerField(null=True)
    rollbacks = models.BigIntegerField(null=True)
    blocks_hit = models.BigIntegerField(null=True)
    blocks_read = models.BigIntegerField(null=True)
    api_up = models.FloatField(null=True)  # 1 or 0; an hour's row: the share of samples it answered

    class Meta:
        indexes = [models.Index(fields=["project", "period", "at"]), models.Index(fields=["period", "at"])]

    def __str__(self) -> str:
        return f"sample of {self.project_id} at {self.at:%Y-%m-%d %H:%M:%S}"

class WatchPass(models.Model):
    """The last pass of each of the watcher's loops (sync, metrics): what /metrics reports of Berth itself."""

    kind = models.CharField(max_length=16, unique=True)
    at = models.DateTimeField()
    seconds = models.FloatField()
    engine_calls = models.PositiveIntegerField(default=0)
    projects = models.PositiveIntegerField(default=0)
    passes = models.PositiveBigIntegerField(default=0)  # since the row was made: a counter
    engine_calls_total = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.kind} pass at {self.at:%H:%M:%S}"

class ForgottenNode(models.Model):
    """A Swarm node an operator gave up on while it was down (services/placement/nodes.py node_forget).

    Until then a project whose data is on a down node cannot be purged: its
    volume, and the final backup, wait for the node. Forgetting says the node
    is not coming back: purge then removes what is left elsewhere and leaves
    the volume to the node. The row lapses when Berth sees the node ready again
    (its data is there after all), so a later outage needs a new decision.
    """

    name = models.CharField(max_length=64, unique=True)  # as in BERTH_SWARM_NODES
    forgotten_at = models.DateTimeField()
    forgotten_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return f"node {self.name}, forgotten at {self.forgotten_at:%Y-%m-%d %H:%M} UTC"

class SecurityEvent(models.Model):
    """Something Berth found wrong on a project's server and repaired: a superuser that should not be one, a
    server role granted to a tenant's role (the bootstrap's heal, services/operations/tenant_safety.py). Kept, listed on the
    project's page, counted on /metrics."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="security_events")
    # The operation whose bootstrap found it.
    operation = models.ForeignKey("projects.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="security_events")
    created_at = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=32)  # "superuser_demoted", "role_revoked"
    detail = models.TextField()  # what was found and done, for a person

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} on {self.project_id}: {self.detail}"
