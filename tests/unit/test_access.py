"""The authorisation matrix: every URL Berth serves × anonymous, user A, user B, staff → the exact status.

A is the owner of every object the requests name; B is another user; staff is
an operator (is_staff and superuser). The URL patterns are enumerated from
Django's resolver and the admin's registry: a new URL or a newly registered
admin model without its row here fails `test_every_url_has_a_row_in_the_matrix`.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from projects.models import ApiToken, Backup, ForgottenNode, Operation, Project, UserQuota
from projects.services.backups import requests as backup_service
from projects.services.lifecycle import requests as lifecycle
from projects.services.accounts.tokens import api_token_create

ROLES = ("anonymous", "a", "b", "staff")


@dataclass
class World:
    a: object
    b: object
    staff: object
    project: Project  # A's, running
    deleted: Project  # A's, deleted
    backup: Backup  # of A's running project, with a file
    token: ApiToken  # A's
    group: Group
    task: DBTaskResult
    quota: UserQuota  # B's
    tokens: dict[str, str] = field(default_factory=dict)  # role -> raw API token
    on15: Project | None = None  # A's, running PostgreSQL 15 (one to upgrade)


@pytest.fixture
def world(db, settings) -> World:
    User = get_user_model()
    a = User.objects.create_user("alice", password="alice-password-1")
    b = User.objects.create_user("bob", password="bob-password-1")
    staff = User.objects.create_user("sam", password="sam-password-1", is_staff=True, is_superuser=True)
    project = Project.objects.get(pk=lifecycle.project_create(owner=a, name="mine").project_id)
    deleted = Project.objects.get(pk=lifecycle.project_create(owner=a, name="gone").project_id)
    lifecycle.project_delete(project=deleted)
    lifecycle.project_create(owner=b, name="bobs")
    dump = b"PGDMP fake dump"
    backup = Backup.objects.create(
        project=project, postgres_version=project.postgres_version, state=Backup.State.VERIFIED,
        finished_at=timezone.now(), size=len(dump), sha256=hashlib.sha256(dump).hexdigest(),
    )  # fmt: skip
    path = backup_service.backup_path(backup)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dump)
    token, _ = api_token_create(user=a, name="a-dashboard")
    group = Group.objects.create(name="operators")
    task = DBTaskResult.objects.create(
        task_path="projects.tasks.run_operation", args_kwargs={"args": [], "kwargs": {"operation_id": 0}},
        backend_name="default", run_after=timezone.now(),
    )  # fmt: skip
    quota = UserQuota.objects.create(user=b, projects=3)
    w = World(a, b, staff, project, deleted, backup, token, group, task, quota)
    w.on15 = Project.objects.get(pk=lifecycle.project_create(owner=a, name="old", postgres_version="15").project_id)
    # The world is built with operations run inline; the requests only queue them,
    # as in production (and the task admin can then import the task's backend).
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    for role, user in (("a", a), ("b", b), ("staff", staff)):
        w.tokens[role] = api_token_create(user=user, name="matrix")[1]
    return w


@dataclass(frozen=True)
class Cell:
    method: str
    path: Callable[[World], str]
    expect: dict[str, int]  # role -> status
    data: Callable[[World], dict] | None = None
    htmx: bool = False
    api: bool = False

    def request(self, client, world: World, role: str):
        headers = {"HTTP_HX_REQUEST": "true"} if self.htmx else {}
        if self.api and role != "anonymous":
            headers["HTTP_AUTHORIZATION"] = f"Bearer {world.tokens[role]}"
        elif not self.api and role != "anonymous":
            client.force_login(getattr(world, role))
        data = self.data(world) if self.data else None
        call = getattr(client, self.method.lower())
        if self.api and self.method in ("POST", "PUT", "PATCH", "DELETE"):
            import json

            return call(self.path(world), data=json.dumps(data or {}), content_type="application/json", **headers)
        return call(self.path(world), data=data, **headers)


def expect(anonymous: int, a: int, b: int, staff: int) -> dict[str, int]:
    return {"anonymous": anonymous, "a": a, "b": b, "staff": staff}


# The dashboard: sign-in required everywhere (302 to the login page); another
# user's project is a 404, the same as a typo; staff see and act on every
# project, but the password and the backup files stay the owner's.
P = lambda w: w.project.public_id  # noqa: E731
D = lambda w: w.deleted.public_id  # noqa: E731
O = lambda w: w.on15.public_id  # noqa: E731
BK = lambda w: w.backup.public_id  # noqa: E731
DASHBOARD: dict[str, list[Cell]] = {
    "": [
        Cell("GET", lambda w: "/", expect(302, 200, 200, 200)),
        Cell("POST", lambda w: "/", expect(302, 405, 405, 405)),
    ],
    "projects/new": [
        Cell("GET", lambda w: "/projects/new", expect(302, 200, 200, 200)),
        Cell("POST", lambda w: "/projects/new", expect(302, 302, 302, 302), data=lambda w: {"name": "n", "postgres_version": "17", "api": "postgrest"}),
    ],
    "projects/<str:project_id>": [
        Cell("GET", lambda w: f"/projects/{P(w)}", expect(302, 200, 404, 200)),
        Cell("GET", lambda w: f"/projects/{P(w)}", expect(200, 286, 404, 286), htmx=True),  # 200 anonymous: HX-Redirect to sign in
        Cell("POST", lambda w: f"/projects/{P(w)}", expect(302, 405, 405, 405)),
    ],
    "projects/<str:project_id>/row": [
        Cell("GET", lambda w: f"/projects/{P(w)}/row", expect(200, 286, 404, 286), htmx=True),
        Cell("GET", lambda w: f"/projects/{P(w)}/row", expect(302, 302, 404, 302)),
    ],
    "projects/<str:project_id>/logs": [
        Cell("GET", lambda w: f"/projects/{P(w)}/logs", expect(302, 200, 404, 200)),
        Cell("GET", lambda w: f"/projects/{P(w)}/logs", expect(200, 200, 404, 200), htmx=True),
    ],
    "projects/<str:project_id>/reveal": [
        Cell("POST", lambda w: f"/projects/{P(w)}/reveal", expect(302, 200, 404, 403)),
        Cell("GET", lambda w: f"/projects/{P(w)}/reveal", expect(302, 405, 405, 405)),
    ],
    "projects/<str:project_id>/settings": [
        Cell("GET", lambda w: f"/projects/{P(w)}/settings", expect(302, 200, 404, 200)),
        Cell("GET", lambda w: f"/projects/{P(w)}/settings", expect(200, 200, 404, 200), htmx=True),
        Cell("POST", lambda w: f"/projects/{P(w)}/settings", expect(302, 302, 404, 302), data=lambda w: {"setting_work_mem": "8MB"}),
    ],
    "projects/<str:project_id>/rotate": [
        Cell("POST", lambda w: f"/projects/{P(w)}/rotate", expect(302, 302, 404, 302), data=lambda w: {"what": "keys"}),
        Cell("GET", lambda w: f"/projects/{P(w)}/rotate", expect(302, 405, 405, 405)),
    ],
    "^projects/(?P<project_id>[^/]+)/(?P<action>stop|start|delete|restore|purge|upgrade|rollback_upgrade|drop_kept_volume)$": [
        Cell("POST", lambda w: f"/projects/{P(w)}/stop", expect(302, 302, 404, 302)),
        Cell("POST", lambda w: f"/projects/{P(w)}/start", expect(302, 302, 404, 302)),
        Cell("POST", lambda w: f"/projects/{P(w)}/delete", expect(302, 302, 404, 302), data=lambda w: {"confirm": "mine"}),
        Cell("POST", lambda w: f"/projects/{D(w)}/restore", expect(302, 302, 404, 302)),
        Cell("POST", lambda w: f"/projects/{D(w)}/purge", expect(302, 302, 404, 302), data=lambda w: {"confirm": "gone"}),
        Cell("POST", lambda w: f"/projects/{O(w)}/upgrade", expect(302, 302, 404, 302), data=lambda w: {"confirm": "old", "postgres_version": "17"}),
        # Nothing is kept from an upgrade: the owner and staff hear why (409), B sees no project.
        Cell("POST", lambda w: f"/projects/{P(w)}/rollback_upgrade", expect(302, 409, 404, 409), data=lambda w: {"confirm": "mine"}),
        Cell("POST", lambda w: f"/projects/{P(w)}/drop_kept_volume", expect(302, 409, 404, 409), data=lambda w: {"confirm": "mine"}),
        Cell("GET", lambda w: f"/projects/{P(w)}/stop", expect(302, 405, 405, 405)),
    ],
    "projects/<str:project_id>/backups": [
        Cell("GET", lambda w: f"/projects/{P(w)}/backups", expect(302, 200, 404, 200)),
    ],
    "projects/<str:project_id>/backups/new": [
        Cell("POST", lambda w: f"/projects/{P(w)}/backups/new", expect(302, 302, 404, 302)),
    ],
    "projects/<str:project_id>/backup-schedule": [
        Cell("POST", lambda w: f"/projects/{P(w)}/backup-schedule", expect(302, 302, 404, 302), data=lambda w: {"hour": "3", "keep": "7", "enabled": "on"}),
    ],
    "backups/<str:backup_id>/verify": [
        Cell("POST", lambda w: f"/backups/{BK(w)}/verify", expect(302, 302, 404, 302)),
    ],
    "backups/<str:backup_id>/restore": [
        Cell("POST", lambda w: f"/backups/{BK(w)}/restore", expect(302, 302, 404, 302), data=lambda w: {"confirm": "mine"}),
    ],
    "backups/<str:backup_id>/download": [
        Cell("GET", lambda w: f"/backups/{BK(w)}/download", expect(302, 200, 404, 403)),
    ],
    "tokens": [
        Cell("GET", lambda w: "/tokens", expect(302, 200, 200, 200)),
        Cell("POST", lambda w: "/tokens", expect(302, 200, 200, 200), data=lambda w: {"name": "ci"}),
    ],
    "tokens/<int:token_id>/revoke": [
        # Tokens are personal: not even staff revoke someone else's here (the admin can).
        Cell("POST", lambda w: f"/tokens/{w.token.pk}/revoke", expect(302, 302, 404, 404)),
    ],
    "nodes": [
        Cell("GET", lambda w: "/nodes", expect(302, 403, 403, 200)),
        Cell("POST", lambda w: "/nodes", expect(302, 405, 405, 405)),
    ],
    # On this single engine there are no nodes: staff get the refusal, in the page.
    "nodes/<str:name>/forget": [
        Cell("POST", lambda w: "/nodes/n2/forget", expect(302, 403, 403, 404), data=lambda w: {"confirm": "n2"}),
        Cell("GET", lambda w: "/nodes/n2/forget", expect(302, 405, 405, 405)),
    ],
    "drift": [
        Cell("GET", lambda w: "/drift", expect(302, 403, 403, 200)),
        Cell("POST", lambda w: "/drift", expect(302, 405, 405, 405)),
    ],
    # Django's sign-in pages.
    "accounts/login/": [
        Cell("GET", lambda w: "/accounts/login/", expect(200, 200, 200, 200)),
    ],
    "accounts/logout/": [
        Cell("POST", lambda w: "/accounts/logout/", expect(302, 302, 302, 302)),
        Cell("GET", lambda w: "/accounts/logout/", expect(405, 405, 405, 405)),
    ],
    "accounts/password_change/": [
        Cell("GET", lambda w: "/accounts/password_change/", expect(302, 200, 200, 200)),
    ],
    "accounts/password_change/done/": [
        Cell("GET", lambda w: "/accounts/password_change/done/", expect(302, 200, 200, 200)),
    ],
}

# The API: a token or 401, whatever the path; another user's object is a 404;
# staff act on every project, but a backup's file stays the owner's (403).
A = lambda w: w.project.operations.first().public_id  # noqa: E731
API: dict[str, list[Cell]] = {
    "v1/projects": [
        Cell("GET", lambda w: "/v1/projects", expect(401, 200, 200, 200), api=True),
        Cell("POST", lambda w: "/v1/projects", expect(401, 202, 202, 202), api=True),
        Cell("PUT", lambda w: "/v1/projects", expect(401, 405, 405, 405), api=True),
    ],
    "v1/projects/<str:project_id>": [
        Cell("GET", lambda w: f"/v1/projects/{P(w)}", expect(401, 200, 404, 200), api=True),
        Cell("DELETE", lambda w: f"/v1/projects/{P(w)}", expect(401, 202, 404, 202), api=True),
        Cell("PATCH", lambda w: f"/v1/projects/{P(w)}", expect(401, 202, 404, 202), api=True, data=lambda w: {"postgres_settings": {"work_mem": "8MB"}}),
        Cell("PUT", lambda w: f"/v1/projects/{P(w)}", expect(401, 405, 405, 405), api=True),
    ],
    "v1/^projects/(?P<project_id>[^/]+)/(?P<action>stop|start|restore|purge|upgrade|rollback-upgrade|move)$": [
        Cell("POST", lambda w: f"/v1/projects/{P(w)}/stop", expect(401, 202, 404, 202), api=True),
        Cell("POST", lambda w: f"/v1/projects/{P(w)}/start", expect(401, 202, 404, 202), api=True),
        Cell("POST", lambda w: f"/v1/projects/{D(w)}/restore", expect(401, 202, 404, 202), api=True),
        Cell("POST", lambda w: f"/v1/projects/{D(w)}/purge", expect(401, 202, 404, 202), api=True, data=lambda w: {"confirm": D(w)}),
        Cell("POST", lambda w: f"/v1/projects/{O(w)}/upgrade", expect(401, 202, 404, 202), api=True, data=lambda w: {"postgres_version": "17"}),
        Cell("POST", lambda w: f"/v1/projects/{P(w)}/rollback-upgrade", expect(401, 409, 404, 409), api=True),
        # Staff only; on this single engine there is no other node, so staff get 400 (its reason).
        Cell("POST", lambda w: f"/v1/projects/{P(w)}/move", expect(401, 403, 404, 400), api=True, data=lambda w: {"node": "n2"}),
        Cell("GET", lambda w: f"/v1/projects/{P(w)}/stop", expect(401, 405, 405, 405), api=True),
    ],
    "v1/projects/<str:project_id>/kept-volume": [
        Cell("DELETE", lambda w: f"/v1/projects/{P(w)}/kept-volume", expect(401, 409, 404, 409), api=True),
        Cell("GET", lambda w: f"/v1/projects/{P(w)}/kept-volume", expect(401, 405, 405, 405), api=True),
    ],
    "v1/projects/<str:project_id>/rotate": [
        Cell("POST", lambda w: f"/v1/projects/{P(w)}/rotate", expect(401, 202, 404, 202), api=True, data=lambda w: {"what": "password"}),
        Cell("GET", lambda w: f"/v1/projects/{P(w)}/rotate", expect(401, 405, 405, 405), api=True),
    ],
    "v1/projects/<str:project_id>/operations": [
        Cell("GET", lambda w: f"/v1/projects/{P(w)}/operations", expect(401, 200, 404, 200), api=True),
    ],
    "v1/operations/<str:operation_id>": [
        Cell("GET", lambda w: f"/v1/operations/{A(w)}", expect(401, 200, 404, 200), api=True),
    ],
    "v1/pool": [
        Cell("GET", lambda w: "/v1/pool", expect(401, 403, 403, 200), api=True),
        Cell("POST", lambda w: "/v1/pool", expect(401, 405, 405, 405), api=True),
    ],
    "v1/nodes/<str:name>/forget": [
        Cell("POST", lambda w: "/v1/nodes/n2/forget", expect(401, 403, 403, 404), data=lambda w: {"confirm": "n2"}, api=True),
        Cell("GET", lambda w: "/v1/nodes/n2/forget", expect(401, 405, 405, 405), api=True),
    ],
    "v1/projects/<str:project_id>/metrics": [
        Cell("GET", lambda w: f"/v1/projects/{P(w)}/metrics?range=1h", expect(401, 200, 404, 200), api=True),
        Cell("GET", lambda w: f"/v1/projects/{P(w)}/metrics?range=1y", expect(401, 400, 404, 400), api=True),
        Cell("POST", lambda w: f"/v1/projects/{P(w)}/metrics", expect(401, 405, 405, 405), api=True),
    ],
    # Prometheus: a staff user's token or a staff session; nobody else.
    "metrics": [
        Cell("GET", lambda w: "/metrics", expect(401, 403, 403, 200), api=True),
        Cell("GET", lambda w: "/metrics", expect(401, 403, 403, 200)),
        Cell("POST", lambda w: "/metrics", expect(405, 405, 405, 405)),
    ],
    "v1/projects/<str:project_id>/backups": [
        Cell("GET", lambda w: f"/v1/projects/{P(w)}/backups", expect(401, 200, 404, 200), api=True),
        Cell("POST", lambda w: f"/v1/projects/{P(w)}/backups", expect(401, 202, 404, 202), api=True),
    ],
    "v1/projects/<str:project_id>/backup-schedule": [
        Cell("GET", lambda w: f"/v1/projects/{P(w)}/backup-schedule", expect(401, 200, 404, 200), api=True),
        Cell("PUT", lambda w: f"/v1/projects/{P(w)}/backup-schedule", expect(401, 200, 404, 200), api=True, data=lambda w: {"hour": 3, "keep": 7}),
    ],
    "v1/backups/<str:backup_id>": [
        Cell("GET", lambda w: f"/v1/backups/{BK(w)}", expect(401, 200, 404, 200), api=True),
        Cell("DELETE", lambda w: f"/v1/backups/{BK(w)}", expect(401, 200, 404, 200), api=True),
    ],
    "v1/^backups/(?P<backup_id>[^/]+)/(?P<action>verify|restore)$": [
        Cell("POST", lambda w: f"/v1/backups/{BK(w)}/verify", expect(401, 202, 404, 202), api=True),
        Cell("POST", lambda w: f"/v1/backups/{BK(w)}/restore", expect(401, 202, 404, 202), api=True, data=lambda w: {"confirm": P(w)}),
    ],
    "v1/backups/<str:backup_id>/download": [
        Cell("GET", lambda w: f"/v1/backups/{BK(w)}/download", expect(401, 200, 404, 403), api=True),
    ],
    "v1/openapi.json": [
        Cell("GET", lambda w: "/v1/openapi.json", expect(200, 200, 200, 200), api=True),
    ],
    "v1/ca.pem": [
        Cell("GET", lambda w: "/v1/ca.pem", expect(200, 200, 200, 200), api=True),
    ],
    "v1/^(?P<path>.*)$": [
        Cell("GET", lambda w: "/v1/nothing/here", expect(401, 404, 404, 404), api=True),
    ],
}

# The admin: staff only (others are sent to its sign-in page). Model pages
# follow each ModelAdmin's promises: projects, operations and tokens are never
# added or edited here, projects and operations never deleted.
ADMIN_MODELS: dict[str, dict[str, int]] = {
    # model label -> staff's status for changelist, add, change, delete, history
    "auth.Group": {"changelist": 200, "add": 200, "change": 200, "delete": 200, "history": 200},
    "auth.User": {"changelist": 200, "add": 200, "change": 200, "delete": 200, "history": 200},
    "django_tasks_database.DBTaskResult": {"changelist": 200, "add": 403, "change": 200, "delete": 403, "history": 200},
    "projects.Project": {"changelist": 200, "add": 403, "change": 200, "delete": 403, "history": 200},
    "projects.Operation": {"changelist": 200, "add": 403, "change": 200, "delete": 403, "history": 200},
    "projects.ApiToken": {"changelist": 200, "add": 403, "change": 200, "delete": 200, "history": 200},
    "projects.Backup": {"changelist": 200, "add": 403, "change": 200, "delete": 403, "history": 200},
    # Forgetting a node is done on the Nodes page; deleting here takes it back.
    "projects.ForgottenNode": {"changelist": 200, "add": 403, "change": 200, "delete": 200, "history": 200},
    # Quotas are the operators' to set: add, change and delete (back to the defaults).
    "projects.UserQuota": {"changelist": 200, "add": 200, "change": 200, "delete": 200, "history": 200},
}
ADMIN_OBJECTS: dict[str, Callable[[World], object]] = {
    "auth.Group": lambda w: w.group,
    "auth.User": lambda w: w.a,
    "django_tasks_database.DBTaskResult": lambda w: w.task,
    "projects.Project": lambda w: w.project,
    "projects.Operation": lambda w: w.project.operations.first(),
    "projects.ApiToken": lambda w: w.token,
    "projects.Backup": lambda w: w.backup,
    "projects.ForgottenNode": lambda w: ForgottenNode.objects.get_or_create(name="n9", defaults={"forgotten_at": timezone.now()})[0],
    "projects.UserQuota": lambda w: w.quota,
}
ADMIN_SITE: dict[str, list[Cell]] = {
    "admin:index": [Cell("GET", lambda w: "/admin/", expect(302, 302, 302, 200))],
    "admin:login": [Cell("GET", lambda w: "/admin/login/", expect(200, 200, 200, 302))],  # staff: already in
    "admin:logout": [
        # Staff are signed out (to LOGOUT_REDIRECT_URL); anyone else is sent to the admin's front door.
        Cell("POST", lambda w: "/admin/logout/", expect(302, 302, 302, 302)),
        Cell("GET", lambda w: "/admin/logout/", expect(302, 302, 302, 405)),
    ],
    "admin:password_change": [Cell("GET", lambda w: "/admin/password_change/", expect(302, 302, 302, 200))],
    "admin:password_change_done": [Cell("GET", lambda w: "/admin/password_change/done/", expect(302, 302, 302, 200))],
    "admin:autocomplete": [Cell("GET", lambda w: "/admin/autocomplete/", expect(302, 302, 302, 403))],
    "admin:jsi18n": [Cell("GET", lambda w: "/admin/jsi18n/", expect(302, 302, 302, 200))],
    "admin:view_on_site": [Cell("GET", lambda w: "/admin/r/1/1/", expect(302, 302, 302, 404))],
    "admin:app_list": [Cell("GET", lambda w: "/admin/projects/", expect(302, 302, 302, 200))],
    "admin:auth_user_password_change": [Cell("GET", lambda w: f"/admin/auth/user/{w.a.pk}/password/", expect(302, 302, 302, 200))],
    "admin:(catch-all)": [Cell("GET", lambda w: "/admin/nothing/here/", expect(302, 302, 302, 404))],
}


def admin_model_cells() -> dict[str, list[Cell]]:
    cells: dict[str, list[Cell]] = {}
    for model, staff_codes in ADMIN_MODELS.items():
        app, name = model.split(".")
        base = f"/admin/{app}/{name.lower()}/"
        obj = ADMIN_OBJECTS[model]
        paths = {
            "changelist": lambda w, base=base: base,
            "add": lambda w, base=base: f"{base}add/",
            "change": lambda w, base=base, obj=obj: f"{base}{obj(w).pk}/change/",
            "delete": lambda w, base=base, obj=obj: f"{base}{obj(w).pk}/delete/",
            "history": lambda w, base=base, obj=obj: f"{base}{obj(w).pk}/history/",
        }
        for view, path in paths.items():
            cells[f"admin:{app}_{name.lower()}_{view}"] = [Cell("GET", path, expect(302, 302, 302, staff_codes[view]))]
    return cells


MATRIX: dict[str, list[Cell]] = {**DASHBOARD, **API, **ADMIN_SITE, **admin_model_cells()}


def served_urls() -> set[str]:
    """Every URL Django serves: a route string, or for the admin its URL name."""
    found: set[str] = set()

    def walk(patterns, prefix: str, namespace: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern), p.namespace or namespace)
            elif namespace == "admin":
                # A model's pages, the app index and the final catch-all are named by the admin.
                found.add(f"admin:{p.name}" if p.name else "admin:(catch-all)")
            else:
                found.add(prefix + str(p.pattern))

    walk(get_resolver().url_patterns, "", "")
    return found


def test_every_url_has_a_row_in_the_matrix_and_every_row_a_url():
    served = served_urls()
    assert sorted(served - set(MATRIX)) == [], "URLs without a row in the authorisation matrix"
    assert sorted(set(MATRIX) - served) == [], "rows for URLs that are no longer served"


def test_every_registered_admin_model_has_its_row():
    assert sorted(m._meta.label for m in admin.site._registry) == sorted(ADMIN_MODELS)


CASES = [(key, n, role) for key, cells in MATRIX.items() for n in range(len(cells)) for role in ROLES]


@pytest.mark.parametrize("key, n, role", CASES, ids=[f"{k or '/'}#{n}-{r}" for k, n, r in CASES])
def test_each_url_answers_each_role_with_its_exact_status(client, world, key, n, role):
    cell = MATRIX[key][n]
    response = cell.request(client, world, role)
    assert response.status_code == cell.expect[role], f"{cell.method} {cell.path(world)} as {role}"
    if response.status_code == 302 and role != "staff" and key.startswith("admin:") and key not in ("admin:logout", "admin:login"):
        assert response["Location"].startswith("/admin/login/")
    if response.status_code == 302 and role == "anonymous" and not cell.api and not key.startswith(("admin:", "accounts/")):
        assert response["Location"].startswith("/accounts/login/?next=")


def test_staff_without_admin_permissions_sees_no_model_in_the_admin(client, world):
    clerk = get_user_model().objects.create_user("clerk", password="clerk-password-1", is_staff=True)
    client.force_login(clerk)
    assert client.get("/admin/").status_code == 200
    for model in ADMIN_MODELS:
        app, name = model.split(".")
        assert client.get(f"/admin/{app}/{name.lower()}/").status_code == 403, model
