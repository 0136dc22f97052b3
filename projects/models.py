"""Berth's data: projects, the operations that change them, and API tokens.

Models hold data and small derived properties only; every change of state is
made by projects/services/.
"""

import secrets
from datetime import datetime
from urllib.parse import quote

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Q

from .crypto import encrypted, secret_decrypt, secret_encrypt


def new_public_id() -> str:
    return secrets.token_hex(6)  # 12 lowercase hex characters


def is_public_id(value: str) -> bool:
    """Whether `value` has the shape of a public id. Anything else is not found
    without a query (and PostgreSQL refuses NUL characters in one)."""
    return len(value) == 12 and all(c in "0123456789abcdef" for c in value)


class InstallationManager(models.Manager["Installation"]):
    def current(self) -> "Installation":
        """This Berth's row, made the first time it is asked for (by whichever process asks first)."""
        found = self.filter(pk=Installation.PK).first()
        if found is not None:
            return found
        try:
            with transaction.atomic():
                return self.create(pk=Installation.PK)
        except IntegrityError:
            return self.get(pk=Installation.PK)  # another process made it a moment ago


class Installation(models.Model):
    """This Berth, as opposed to another on the same engine: one row, made once.

    `install_id` labels every engine object Berth makes (`berth.install`), so
    two Berths sharing an engine never take each other's objects for orphans.
    The row is also the lock every allocation (ports, subnets) takes, so
    concurrent creates choose one after another instead of colliding.
    """

    PK = 1

    install_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = InstallationManager()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="installation_is_one_row")]

    def __str__(self) -> str:
        return f"installation {self.install_id}"


def installation_id() -> str:
    return Installation.objects.current().install_id


def allocation_lock() -> None:
    """Serialise allocations until the caller's transaction ends (call inside one).

    PostgreSQL: a row lock, held to commit, so the next allocator reads what
    this one reserved. SQLite: its IMMEDIATE transactions already run one at a time.
    """
    if not Installation.objects.select_for_update().filter(pk=Installation.PK).values_list("pk", flat=True):
        Installation.objects.current()  # the first allocation ever: make the row, then lock it
        list(Installation.objects.select_for_update().filter(pk=Installation.PK).values_list("pk", flat=True))


NAME_MAX = 63  # a project's name; services/names.py refuses longer ones with a clear error


def default_db_memory() -> str:
    return settings.BERTH_DB_MEMORY


def default_api_memory() -> str:
    return settings.BERTH_API_MEMORY


class Project(models.Model):
    class Status(models.TextChoices):
        PROVISIONING = "provisioning"
        RUNNING = "running"
        STOPPING = "stopping"
        STOPPED = "stopped"
        STARTING = "starting"
        DELETING = "deleting"
        DELETED = "deleted"
        RESTORING = "restoring"
        PURGING = "purging"
        PURGED = "purged"
        FAILED = "failed"
        UPGRADING = "upgrading"  # to another major, or back to the kept one (rollback)
        # In the warm pool: made, started and probed, owned by nobody, waiting to be claimed (services/pool/requests.py).
        POOLED = "pooled"

    class Health(models.TextChoices):
        HEALTHY = "healthy"
        UNHEALTHY = "unhealthy"
        DOWN = "down"
        MISSING = "missing"
        UNKNOWN = "unknown"
        NODE_DOWN = "node_down"  # on a Swarm: the node holding its data is down (the data waits there)

    class Api(models.TextChoices):
        POSTGREST = "postgrest", "PostgREST"
        POSTGRAPHILE = "postgraphile", "PostGraphile"

    ADMIN_USER = "berth_admin"

    SETTLED = frozenset({Status.RUNNING, Status.STOPPED, Status.DELETED, Status.PURGED, Status.FAILED, Status.POOLED})

    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    name = models.CharField(max_length=NAME_MAX)
    # Null: a warm-pool stack, Berth's own until a create claims it (services/pool/requests.py); nobody sees it.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="projects")
    postgres_version = models.CharField(max_length=8)
    api_flavour = models.CharField(max_length=16, choices=Api.choices)
    # Unique per node (across the engine on a single engine, where node is "");
    # null once a purge has released them.
    db_port = models.PositiveIntegerField(null=True, blank=True)
    api_port = models.PositiveIntegerField(null=True, blank=True)
    # On a Swarm: the node the project and its data volume are pinned to (its
    # name in BERTH_SWARM_NODES) and the address its ports are published on
    # (the node's berth.address label when placed). "" on a single engine.
    # Only a verified backup restored onto another node changes it (move).
    node = models.CharField(max_length=64, blank=True, default="")
    node_address = models.CharField(max_length=255, blank=True, default="")
    # The project network's subnet, from BERTH_NETWORK_POOL; unique, and kept
    # like the ports until a purge releases it. Null until the network is
    # first made by this version (stack/up.py).
    network_subnet = models.CharField(max_length=18, null=True, blank=True, unique=True)
    db_name = models.CharField(max_length=63, default="app")
    db_user = models.CharField(max_length=63, default="app")
    db_password_encrypted = models.TextField(editable=False)
    jwt_secret_encrypted = models.TextField(editable=False)
    # The server's bootstrap superuser is Berth's own role (ADMIN_USER) with this
    # password. Empty on projects made before that: their bootstrap superuser is
    # `db_user` itself, which Postgres cannot demote (see `owner_is_superuser`).
    admin_password_encrypted = models.TextField(editable=False, blank=True, default="")
    # The api's login role, which can only become `anon` or `service`.
    authenticator_password_encrypted = models.TextField(editable=False, blank=True, default="")
    # The metrics sampler's login (runtime/sessions.py MONITOR_USER: pg_monitor,
    # no superuser), made by the bootstrap with this password.
    monitor_password_encrypted = models.TextField(editable=False, blank=True, default="")
    # The db server's TLS certificate, issued by Berth's CA for tls_host
    # (BERTH_PUBLIC_HOST when it was issued); renewed by services/settings/certificates.py.
    tls_cert_pem = models.TextField(editable=False, blank=True, default="")
    tls_key_encrypted = models.TextField(editable=False, blank=True, default="")
    tls_host = models.CharField(max_length=255, editable=False, blank=True, default="")
    tls_not_after = models.DateTimeField(null=True, blank=True, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROVISIONING)
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.UNKNOWN)
    observed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    purge_after = models.DateTimeField(null=True, blank=True)
    # When it first reached running. From then on its data volume holds data:
    # a start or restore never makes a new, empty one unless asked (steps.py).
    first_running_at = models.DateTimeField(null=True, blank=True)
    # Which data volume the stack mounts: "" the one it was created with, else
    # the major an upgrade made its volume for (runtime/base.py, data_volume_name).
    volume_version = models.CharField(max_length=8, blank=True, default="", editable=False)
    # The volume an upgrade left behind, kept for a rollback until it is
    # dropped or the project purged: its major, its volume_version, and whether
    # its server was of the old kind (the owner its superuser). Empty: none kept.
    kept_postgres_version = models.CharField(max_length=8, blank=True, default="", editable=False)
    kept_volume_version = models.CharField(max_length=8, blank=True, default="", editable=False)
    kept_owner_is_superuser = models.BooleanField(default=False, editable=False)
    kept_at = models.DateTimeField(null=True, blank=True, editable=False)
    # What the owner may change after creation (services/settings/requests.py, pgconf.py):
    # the containers' memory limits (the engine's format, "512m"), the Postgres
    # settings of pgconf's allowlist over spec.POSTGRES_SETTINGS, and whether a
    # change that needs a restart is waiting for one (cleared when the stack is
    # next brought up with it).
    db_memory = models.CharField(max_length=16, default=default_db_memory)
    api_memory = models.CharField(max_length=16, default=default_api_memory)
    postgres_settings = models.JSONField(default=dict, blank=True)
    restart_pending = models.BooleanField(default=False)
    # The stack changes (stack/changes.py) its stack had when it last came up;
    # 0: not since they were numbered. From/at: what its last start changed.
    stack_revision = models.PositiveSmallIntegerField(default=0)
    # Every database on its server the tenant may use, as the last metrics pass
    # saw them: [{"name", "size_bytes"}], by name (issue 26: `app` may create them).
    databases = models.JSONField(default=list, blank=True)
    stack_revised_from = models.PositiveSmallIntegerField(null=True, blank=True)
    stack_revised_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["status", "purge_after"]),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="project_name_not_blank"),
            # A pooled stack belongs to nobody: a claim sets the owner and leaves `pooled` in one update.
            models.CheckConstraint(condition=~Q(status="pooled") | Q(owner__isnull=True), name="pooled_project_has_no_owner"),
            models.UniqueConstraint(fields=["node", "db_port"], name="project_db_port_per_node"),
            models.UniqueConstraint(fields=["node", "api_port"], name="project_api_port_per_node"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    @property
    def public_host(self) -> str:
        """Where its ports are reached: its node's address on a Swarm, else BERTH_PUBLIC_HOST."""
        return self.node_address or settings.BERTH_PUBLIC_HOST

    # Secrets live encrypted in the row; these properties are the only way in.
    db_password = encrypted("db_password_encrypted")
    jwt_secret = encrypted("jwt_secret_encrypted")
    authenticator_password = encrypted("authenticator_password_encrypted")
    monitor_password = encrypted("monitor_password_encrypted")
    tls_key = encrypted("tls_key_encrypted")

    @property
    def owner_is_superuser(self) -> bool:
        """True for the old kind of project, where `db_user` is the server's bootstrap superuser."""
        return not self.admin_password_encrypted

    @property
    def admin_user(self) -> str:
        """The superuser Berth bootstraps, backs up and watches with."""
        return self.db_user if self.owner_is_superuser else self.ADMIN_USER

    @property
    def admin_password(self) -> str:
        return self.db_password if self.owner_is_superuser else secret_decrypt(self.admin_password_encrypted)

    @admin_password.setter
    def admin_password(self, value: str) -> None:
        self.admin_password_encrypted = secret_encrypt(value)

    @property
    def is_settled(self) -> bool:
        return self.status in self.SETTLED

    @property
    def has_kept_volume(self) -> bool:
        """Whether an upgrade's old volume is kept (a rollback can return to it)."""
        return bool(self.kept_postgres_version)

    @property
    def is_pooled(self) -> bool:
        """A warm-pool stack (filling, ready, broken or drained): Berth's, not any user's."""
        return self.owner_id is None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def db_url(self, *, reveal: bool = True) -> str | None:
        if self.db_port is None:
            return None
        password = quote(self.db_password, safe="") if reveal else "********"
        return (
            f"postgresql://{quote(self.db_user, safe='')}:{password}"
            f"@{self.public_host}:{self.db_port}/{quote(self.db_name, safe='')}"
        )

    @property
    def api_url(self) -> str | None:
        return None if self.api_port is None else f"http://{self.public_host}:{self.api_port}"


class Operation(models.Model):
    class Kind(models.TextChoices):
        CREATE = "create"
        STOP = "stop"
        START = "start"
        DELETE = "delete"
        RESTORE = "restore"
        PURGE = "purge"
        # services/backups/requests.py (their steps: services/operations/steps.py)
        BACKUP = "backup"
        VERIFY_BACKUP = "verify_backup"
        RESTORE_BACKUP = "restore_backup"
        CLONE = "clone"  # a create that restores a backup into the new project
        # services/upgrades/requests.py: to another major on a new volume, back to the kept one, drop the kept one
        UPGRADE = "upgrade"
        ROLLBACK_UPGRADE = "rollback_upgrade"
        DROP_KEPT_VOLUME = "drop_kept_volume"
        # The warm pool (services/pool/requests.py): a stack made for the pool, one removed
        # from it, and a create served by a pooled stack (recorded, never queued).
        POOL_FILL = "pool_fill"
        POOL_DRAIN = "pool_drain"
        CLAIM = "claim"
        # services/settings/requests.py: a change after creation
        RECONFIGURE = "reconfigure"  # reloadable settings applied to the running server
        RESTART = "restart"  # the stack stopped and brought up with its current spec
        ROTATE_PASSWORD = "rotate_password"
        ROTATE_KEYS = "rotate_keys"
        MOVE = "move"  # on a Swarm: a verified backup restored onto another node (target_node)

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    IN_FLIGHT = (State.QUEUED, State.RUNNING)

    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="operations")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Touched by the worker while it runs the operation: a stale heartbeat means
    # the worker died (see services/operations/queue.py, operation_recover_stale).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # The project's status when the operation was queued: where it goes back to
    # when the engine could not be reached at all, since then nothing changed.
    prior_status = models.CharField(max_length=16, blank=True)
    # The backup this operation makes, verifies, restores or clones from.
    backup = models.ForeignKey("Backup", null=True, blank=True, on_delete=models.SET_NULL, related_name="operations")
    # A start or restore the owner allowed to make a new, empty data volume for
    # a project that ran before and whose volume is gone.
    allow_empty_database = models.BooleanField(default=False)
    # The major an upgrade goes to.
    postgres_version = models.CharField(max_length=8, blank=True, default="")
    # A move's destination node (its name in BERTH_SWARM_NODES).
    target_node = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one operation in flight per project: a constraint, not a convention.
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(state__in=["queued", "running"]),
                name="one_operation_in_flight_per_project",
            ),
        ]
        indexes = [models.Index(fields=["state", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.public_id} ({self.state})"

    @property
    def is_settled(self) -> bool:
        return self.state not in self.IN_FLIGHT

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, editable=False)  # shown in lists so a person can tell tokens apart
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Null: never expires. A read-only token may only read (GET/HEAD): a leaked
    # CI token that only lists projects cannot stop or delete them.
    expires_at = models.DateTimeField(null=True, blank=True)
    read_only = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class UserQuota(models.Model):
    """An operator's limits for one user; an empty field takes the BERTH_QUOTA_* default (services/lifecycle/quotas.py)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota")
    projects = models.PositiveIntegerField(
        null=True, blank=True, help_text="Projects the user may hold, deleted ones included until purged. Empty: BERTH_QUOTA_PROJECTS."
    )
    backups = models.PositiveIntegerField(
        null=True, blank=True, help_text="Manual backups the user's projects may hold. Empty: BERTH_QUOTA_BACKUPS."
    )
    backup_bytes = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Bytes of backup files the user's projects may hold. Empty: BERTH_QUOTA_BACKUP_BYTES."
    )
    # Staff are not exempt by being staff: an operator says so here.
    unlimited = models.BooleanField(default=False, help_text="No quota applies to this user.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "quota"

    def __str__(self) -> str:
        return f"quota of {self.user}"


class Backup(models.Model):
    """One pg_dump of a project's database: a file under BERTH_BACKUP_DIR/<project id>/ and what it held.

    `tables` and `roles` are recorded at dump time, in the dump's own snapshot;
    verification restores the file and compares against them.
    """

    class State(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"  # dumped, not (yet) verified
        FAILED = "failed"  # no file
        VERIFIED = "verified"
        VERIFY_FAILED = "verify_failed"

    class Trigger(models.TextChoices):
        MANUAL = "manual"
        SCHEDULED = "scheduled"
        PRE_PURGE = "pre-purge"
        PRE_RESTORE = "pre-restore"
        PRE_UPGRADE = "pre-upgrade"  # the dump an upgrade restores into the new major
        PRE_ROLLBACK = "pre-rollback"  # the upgraded database, before a rollback drops its volume
        PRE_MOVE = "pre-move"  # the backup a move restores onto the new node

    RESTORABLE = (State.SUCCEEDED, State.VERIFIED)

    public_id = models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="backups")
    # The operation that made it: a backup, or the restore or purge that took it first.
    operation = models.ForeignKey(Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="backups_made")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    size = models.BigIntegerField(null=True, blank=True)  # bytes
    sha256 = models.CharField(max_length=64, blank=True)
    postgres_version = models.CharField(max_length=8)  # the major whose image dumped it, and verifies it
    server_version = models.CharField(max_length=100, blank=True)
    # "schema"."table" (quoted as needed) -> rows; a table of another database than
    # the project's own is named "<database>/<schema>.<table>" (dumps.py).
    tables = models.JSONField(default=dict, blank=True)
    # The databases the file holds (a tar of one archive each), the project's own
    # first; empty for a file of the project's own database alone (before issue 26).
    databases = models.JSONField(default=list, blank=True)
    roles = models.JSONField(default=list, blank=True)  # roles the dump may name as owners or grantees
    error = models.TextField(blank=True)
    # Removed by the backup pass after this (a purge's final backups); null: kept until retention or by hand.
    keep_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "-created_at"]),
            models.Index(fields=["state"]),
            models.Index(fields=["keep_until"]),
        ]

    def __str__(self) -> str:
        return f"backup {self.public_id} of {self.project.public_id} ({self.state})"

    @property
    def held_databases(self) -> list[str]:
        """The databases its file holds: a file from before issue 26 holds the project's own alone; none without a file."""
        if self.databases:
            return [str(name) for name in self.databases]
        return [self.project.db_name] if self.sha256 else []

    @property
    def is_restorable(self) -> bool:
        return self.state in self.RESTORABLE

    @property
    def filename(self) -> str:
        return f"{self.public_id}.dump"

    @property
    def row_count(self) -> int:
        return sum(self.tables.values())


class BackupSchedule(models.Model):
    """A project's daily backup: at `hour` (UTC), keeping the newest `keep` good scheduled backups."""

    HOUR_MAX = 23
    KEEP_MAX = 365  # a year of daily backups

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="backup_schedule")
    enabled = models.BooleanField(default=True)
    hour = models.PositiveSmallIntegerField(default=3)
    keep = models.PositiveSmallIntegerField(default=7)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(hour__lte=23), name="backup_schedule_hour_0_23"),
            models.CheckConstraint(condition=Q(keep__gte=1), name="backup_schedule_keeps_one"),
        ]

    def __str__(self) -> str:
        return f"daily at {self.hour:02d}:00 UTC, keep {self.keep}"


class CertificateAuthority(models.Model):
    """Berth's own CA, made once (services/settings/certificates.py): it signs every project's server certificate."""

    name = models.CharField(max_length=32, unique=True, default="berth")
    cert_pem = models.TextField()
    key_encrypted = models.TextField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"certificate authority {self.name}"

    key_pem = encrypted("key_encrypted")


class SecondFactorRequirement(models.Model):
    """An operator's word that this user must sign in with a second factor, whatever BERTH_REQUIRE_2FA says.

    Its row is the requirement (services/accounts/mfa.py second_factor_required): made or
    deleted in the admin. Enrolling makes it required too, without a row.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="second_factor_requirement")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"second factor required for {self.user}"


# Berth's observation records (projects/records.py), listed here as every model of the app is.
from .records import ForgottenNode as ForgottenNode, MetricSample as MetricSample, SecurityEvent as SecurityEvent, WatchPass as WatchPass  # noqa: E402
