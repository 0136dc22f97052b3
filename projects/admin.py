"""The Django admin, for operators: read-only views of the data, and actions that call the services.

Nothing here edits a project's fields: state changes go through the same
services as the dashboard and the API (so they queue operations and respect
the one-in-flight rule), and secrets never appear — neither the encrypted
columns nor the values behind them.
"""

from collections.abc import Callable

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse

from .models import ApiToken, Backup, ForgottenNode, Operation, Project, UserQuota
from .runtime import RuntimeFailure
from projects.services.lifecycle import requests as lifecycle
from .services.errors import ServiceError
from projects.services.placement.nodes import nodes_overview
from projects.services.pool.requests import pool_status
from projects.services.lifecycle.quotas import quota_limits, quota_usage
from projects.services.fleet.watcher import project_observe


class ReadOnlyAdmin[M: Model](admin.ModelAdmin[M]):
    """Rows are shown, never added or edited here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: M | None = None) -> bool:
        return False


class OperationInline(admin.TabularInline[Operation, Project]):
    model = Operation
    fields = ("public_id", "kind", "state", "requested_by", "created_at", "started_at", "finished_at", "error")
    readonly_fields = fields
    ordering = ("-created_at", "-id")
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True


@admin.register(Project)
class ProjectAdmin(ReadOnlyAdmin[Project]):
    list_display = (
        "name", "public_id", "owner", "status", "health", "postgres_version", "api_flavour",
        "node", "db_port", "api_port", "observed_at", "created_at",
    )  # fmt: skip
    # node: on a Swarm, the projects of one node (each node's load is above the list, and on /nodes).
    list_filter = ("status", "health", "node", "api_flavour", "postgres_version")
    search_fields = ("public_id", "name")
    list_select_related = ("owner",)
    ordering = ("-created_at", "-id")
    show_full_result_count = False  # no second COUNT(*) over every project on each page
    # Listed explicitly so the encrypted password and JWT secret can never show up.
    fields = (
        "public_id", "name", "owner", "status", "health", "observed_at", "postgres_version", "api_flavour",
        "node", "node_address", "db_port", "api_port", "network_subnet", "db_name", "db_user", "db_memory", "api_memory",
        "postgres_settings", "restart_pending", "created_at", "updated_at", "deleted_at", "purge_after",
    )  # fmt: skip
    readonly_fields = fields
    inlines = (OperationInline,)
    actions = ("sync_selected", "stop_selected", "start_selected", "delete_selected_projects")

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, object] | None = None) -> HttpResponse:
        # The warm pool's state above the list (templates/admin/projects/project/change_list.html);
        # its stacks are the rows without an owner. On a Swarm, each node's state and load too
        # (nothing to read on a single engine).
        context = {**(extra_context or {}), "pools": pool_status(), "nodes": nodes_overview()}
        return super().changelist_view(request, context)

    def has_delete_permission(self, request: HttpRequest, obj: Project | None = None) -> bool:
        # Deleting a row here would leave its containers and volume behind:
        # delete and purge are operations (the actions below, `purge_deleted`).
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        # The form is read-only (has_change_permission is False), but acting on
        # projects is still what the change permission means.
        return request.user.has_perm("projects.change_project")

    def _each(self, request: HttpRequest, queryset: QuerySet[Project], verb: str, act: Callable[[Project], str]) -> None:
        """Run `act` on every selected project and report each result, so one refusal hides no other outcome."""
        for project in queryset:
            try:
                outcome = act(project)
            except (ServiceError, RuntimeFailure) as exc:
                self.message_user(request, f"{project}: {verb} refused: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{project}: {outcome}", messages.SUCCESS)

    @admin.action(description="Sync health from the engine", permissions=["operate"])
    def sync_selected(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        def sync(project: Project) -> str:
            health = project_observe(project.public_id)
            return f"health is {health}" if health else "purged, nothing to observe"

        self._each(request, queryset, "sync", sync)

    def _queue(self, request: HttpRequest, queryset: QuerySet[Project], verb: str, service: Callable[..., Operation]) -> None:
        def queue(project: Project) -> str:
            operation = service(project=project, requested_by=request.user)
            return f"{verb} queued (operation {operation.public_id}, now {project.status})"

        self._each(request, queryset, verb, queue)

    @admin.action(description="Stop", permissions=["operate"])
    def stop_selected(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        self._queue(request, queryset, "stop", lifecycle.project_stop)

    @admin.action(description="Start", permissions=["operate"])
    def start_selected(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        self._queue(request, queryset, "start", lifecycle.project_start)

    @admin.action(description="Delete (soft: containers go, data kept until purge)", permissions=["operate"])
    def delete_selected_projects(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        self._queue(request, queryset, "delete", lifecycle.project_delete)


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdmin[Operation]):
    list_display = ("public_id", "kind", "state", "project", "requested_by", "created_at", "duration", "error")
    list_filter = ("state", "kind")
    search_fields = ("public_id", "project__public_id", "project__name")
    list_select_related = ("project", "requested_by")
    show_full_result_count = False
    fields = (
        "public_id", "project", "kind", "state", "requested_by",
        "created_at", "started_at", "heartbeat_at", "finished_at", "error",
    )  # fmt: skip
    readonly_fields = fields

    def has_delete_permission(self, request: HttpRequest, obj: Operation | None = None) -> bool:
        return False  # the history of a project is not edited

    @admin.display(description="took")
    def duration(self, obj: Operation) -> str:
        return "—" if obj.duration_s is None else f"{obj.duration_s:.1f} s"


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin[ApiToken]):
    # No key_hash: nothing derived from a token's value is shown; the prefix tells tokens apart.
    list_display = ("name", "user", "prefix", "read_only", "created_at", "expires_at", "last_used_at")
    list_filter = ("read_only",)
    search_fields = ("name", "prefix", "user__username")
    list_select_related = ("user",)
    fields = ("name", "user", "prefix", "read_only", "created_at", "expires_at", "last_used_at")
    readonly_fields = fields
    # Deleting stays allowed: an operator revokes a leaked token here.


@admin.register(Backup)
class BackupAdmin(ReadOnlyAdmin[Backup]):
    list_display = ("public_id", "project", "trigger", "state", "size", "created_at", "verified_at", "keep_until")
    list_filter = ("state", "trigger")
    search_fields = ("public_id", "project__public_id", "project__name")
    list_select_related = ("project",)
    show_full_result_count = False
    fields = (
        "public_id", "project", "trigger", "state", "requested_by", "created_at", "finished_at", "verified_at",
        "size", "sha256", "postgres_version", "server_version", "tables", "keep_until", "error",
    )  # fmt: skip
    readonly_fields = fields

    def has_delete_permission(self, request: HttpRequest, obj: Backup | None = None) -> bool:
        # A backup is a row and a file: deleting here would orphan the file.
        # The dashboard and the API delete both through the backups service.
        return False


@admin.register(ForgottenNode)
class ForgottenNodeAdmin(ReadOnlyAdmin[ForgottenNode]):
    """Swarm nodes given up while down (the dashboard's Nodes page, or POST /v1/nodes/{name}/forget).

    Deleting a row takes the decision back: purges wait for the node again.
    """

    list_display = ("name", "forgotten_at", "forgotten_by")
    fields = list_display
    readonly_fields = fields


@admin.register(UserQuota)
class UserQuotaAdmin(admin.ModelAdmin[UserQuota]):
    """Operators set one user's limits here (Django's add/change permissions on quotas); empty fields take BERTH_QUOTA_*."""

    list_display = ("user", "projects", "backups", "backup_bytes", "unlimited", "usage", "updated_at")
    list_filter = ("unlimited",)
    search_fields = ("user__username",)
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    fields = ("user", "projects", "backups", "backup_bytes", "unlimited", "usage")
    readonly_fields = ("usage",)

    @admin.display(description="holds now (of the limit in force)")
    def usage(self, obj: UserQuota) -> str:
        if obj.pk is None:
            return "—"
        used = quota_usage(obj.user)
        limits = quota_limits(obj.user)
        if limits is None:
            return f"{used['projects']} projects, {used['backups']} manual backups, {used['backup_bytes']} bytes (unlimited)"
        return (
            f"{used['projects']} of {limits.projects} projects, {used['backups']} of {limits.backups} manual backups, "
            f"{used['backup_bytes']} of {limits.backup_bytes} bytes"
        )
