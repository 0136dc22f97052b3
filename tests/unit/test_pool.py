"""services/pool/requests.py against FakeRuntime: pooled stacks are made, hidden, claimed once each, and refilled within limits."""

import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from projects.models import Operation, Project, UserQuota
from projects.runtime import RuntimeUnavailable
from projects.services.lifecycle import requests as lifecycle
from projects.services.errors import QuotaExceeded
from projects.services.pool.requests import pool_drain, pool_refill, pool_status
from tests.conftest import bearer

S = Project.Status
K = Operation.Kind
QUEUED_ONLY = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}


@pytest.fixture
def pool(settings, db):
    """Two stacks of the default version and flavour, made (inline, on FakeRuntime)."""
    settings.BERTH_WARM_POOL = ((None, None, 2),)
    pool_refill()
    return list(Project.objects.filter(owner__isnull=True, status=S.POOLED))


def test_a_refill_makes_each_stack_started_probed_and_its_own(pool, fake_runtime):
    assert len(pool) == 2
    a, b = pool
    assert {p.health for p in pool} == {Project.Health.HEALTHY}
    assert a.owner_id is None and a.first_running_at is not None
    assert len({a.public_id, b.public_id}) == len({a.db_port, b.db_port}) == len({a.api_port, b.api_port}) == 2
    assert a.network_subnet != b.network_subnet and a.db_password != b.db_password and a.jwt_secret != b.jwt_secret
    assert a.tls_cert_pem and a.tls_cert_pem != b.tls_cert_pem
    assert {op.kind for p in pool for op in p.operations.all()} == {K.POOL_FILL}
    assert all(op.requested_by_id is None for p in pool for op in p.operations.all())
    for p in pool:
        assert fake_runtime.containers_by_name[f"project_{p.public_id}_db"].running


def test_a_create_that_matches_claims_a_ready_stack_with_no_engine_call(pool, user, fake_runtime, settings):
    settings.TASKS = QUEUED_ONLY  # the refill after it is queued for the workers, not run here
    fake_runtime.fail_with("*", RuntimeUnavailable("Docker Engine unreachable at unix:///x"))
    calls = sum(fake_runtime.calls.values())
    operation = lifecycle.project_create(owner=user, name="shop")
    assert sum(fake_runtime.calls.values()) == calls  # the engine was not asked anything
    project = Project.objects.get(pk=operation.project_id)
    assert project.public_id in {p.public_id for p in pool}
    assert (project.owner, project.name, project.status) == (user, "shop", S.RUNNING)
    assert (operation.kind, operation.state, operation.requested_by) == (K.CLAIM, Operation.State.SUCCEEDED, user)
    assert operation.finished_at is not None and project.created_at == operation.started_at


def test_the_api_answers_a_claim_as_any_create_202_running_or_201_with_wait(pool, user, client):
    queued = client.post("/v1/projects", {}, content_type="application/json", **bearer(user))
    assert queued.status_code == 202
    body = queued.json()
    assert body["status"] == "running" and body["operation"]["kind"] == "claim" and body["operation"]["state"] == "succeeded"
    assert body["db_url"].startswith("postgresql://app:") and body["anon_key"]
    waited = client.post("/v1/projects?wait=5", {"name": "two"}, content_type="application/json", **bearer(user))
    assert waited.status_code == 201 and waited.json()["status"] == "running" and waited.json()["name"] == "two"


def test_a_create_with_options_the_pool_does_not_hold_takes_the_cold_path(pool, user):
    other = "15" if pool[0].postgres_version != "15" else "17"
    operation = lifecycle.project_create(owner=user, postgres_version=other)
    assert operation.kind == K.CREATE
    assert Project.objects.filter(owner__isnull=True, status=S.POOLED).count() == 2


def test_a_claim_is_followed_by_a_refill(pool, user):
    lifecycle.project_create(owner=user)
    assert Project.objects.filter(owner__isnull=True, status=S.POOLED).count() == 2
    assert Project.objects.filter(owner=user, status=S.RUNNING).count() == 1


def test_a_stack_sync_saw_broken_is_never_handed_out(pool, user, settings):
    broken, good = pool
    Project.objects.filter(pk=broken.pk).update(health=Project.Health.MISSING)
    settings.TASKS = QUEUED_ONLY  # nothing the claim's refill queues runs yet
    assert lifecycle.project_create(owner=user).project_id == good.pk
    second = lifecycle.project_create(owner=user)
    assert second.kind == K.CREATE and second.project_id != broken.pk
    [drain] = Operation.objects.filter(kind=K.POOL_DRAIN)
    assert drain.project_id == broken.pk  # the claim's refill queued its removal


def test_a_stack_unhealthy_just_after_its_fill_is_not_claimed_nor_drained(pool, user, settings):
    starting, good = pool
    Project.objects.filter(pk=starting.pk).update(health=Project.Health.UNHEALTHY)  # a healthcheck still starting
    assert pool_refill().drained == []
    settings.TASKS = QUEUED_ONLY
    assert lifecycle.project_create(owner=user).project_id == good.pk
    assert lifecycle.project_create(owner=user).kind == K.CREATE


def test_a_refill_drains_a_broken_stack_then_makes_its_replacement(pool):
    broken = pool[0]
    long_ago = timezone.now() - timedelta(minutes=5)
    Project.objects.filter(pk=broken.pk).update(health=Project.Health.UNHEALTHY, updated_at=long_ago)
    refill = pool_refill()
    broken.refresh_from_db()
    assert refill.drained == [broken.public_id] and refill.filled == []
    assert (broken.status, broken.db_port, broken.network_subnet) == (S.PURGED, None, None)
    assert len(pool_refill().filled) == 1
    assert Project.objects.filter(owner__isnull=True, status=S.POOLED, health=Project.Health.HEALTHY).count() == 2


def test_pool_stacks_are_in_no_list_and_found_by_no_id(pool, user, staff, client):
    hidden = pool[0].public_id
    for viewer in (user, staff):
        listed = client.get("/v1/projects?include_deleted=1", **bearer(viewer)).json()["projects"]
        assert hidden not in {p["project_id"] for p in listed}
        assert client.get(f"/v1/projects/{hidden}", **bearer(viewer)).status_code == 404
        operation = pool[0].operations.get()
        assert client.get(f"/v1/operations/{operation.public_id}", **bearer(viewer)).status_code == 404
    client.force_login(staff)
    assert hidden not in client.get("/").content.decode()


def test_pool_stacks_count_against_no_quota_and_a_claim_against_the_claimers(pool, user):
    UserQuota.objects.create(user=user, projects=1)
    lifecycle.project_create(owner=user)
    with pytest.raises(QuotaExceeded):
        lifecycle.project_create(owner=user)
    assert Project.objects.filter(owner__isnull=True, status=S.POOLED).count() == 2  # refilled; the refusal took nothing


def test_refill_keeps_at_most_workers_minus_one_pool_operations_in_flight(settings, db):
    settings.TASKS = QUEUED_ONLY  # queued, never run: they stay in flight
    settings.BERTH_WORKERS = 3
    settings.BERTH_WARM_POOL = ((None, None, 5),)
    first = pool_refill()
    assert len(first.filled) == 2 and first.short
    second = pool_refill()
    assert second.filled == [] and second.short
    in_flight = Operation.objects.filter(kind=K.POOL_FILL, state__in=Operation.IN_FLIGHT).count()
    assert in_flight == 2


def test_refill_leaves_the_ports_reserve_to_users(settings, db, user):
    settings.BERTH_DB_PORTS = (20690, 20699)  # ten ports: a reserve of two
    settings.BERTH_API_PORTS = (20790, 20799)
    settings.BERTH_WORKERS = 20
    settings.BERTH_WARM_POOL = ((None, None, 10),)
    refill = pool_refill()
    assert len(refill.filled) == 8 and "reserve" in refill.held_back and not refill.short
    lifecycle.project_create(owner=user, postgres_version="15")  # a user's create still finds ports
    lifecycle.project_create(owner=user, postgres_version="15")


def test_changing_the_setting_converges_surplus_drained_missing_made(pool, settings):
    settings.BERTH_WARM_POOL = (("15", "postgraphile", 1),)
    pool_refill()  # drains the two no longer wanted, fills the new one
    assert Project.objects.filter(owner__isnull=True, status=S.POOLED).values_list("postgres_version", "api_flavour").get() == ("15", "postgraphile")
    assert [(p.postgres_version, p.api, p.target, p.ready, p.filling) for p in pool_status()] == [("15", "postgraphile", 1, 1, 0)]


def test_drain_removes_every_pooled_stack_and_the_command_shows_the_pool(pool, settings, capsys):
    call_command("pool")
    assert "2" in capsys.readouterr().out
    settings.BERTH_WARM_POOL = ()
    call_command("pool", "--drain")
    out = capsys.readouterr().out
    assert "2 pooled stack(s) queued for removal" in out
    assert not Project.objects.filter(owner__isnull=True).exclude(status=S.PURGED).exists()
    assert pool_drain() == []


def test_get_pool_answers_staff_and_refuses_users(pool, user, staff, client):
    answer = client.get("/v1/pool", **bearer(staff))
    assert answer.status_code == 200
    [entry] = answer.json()["pools"]
    assert (entry["target"], entry["ready"], entry["filling"]) == (2, 2, 0)
    refused = client.get("/v1/pool", **bearer(user))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"


def test_the_staff_dashboard_and_the_admin_show_the_pool(pool, staff, user, client):
    client.force_login(staff)
    assert "Warm pool" in client.get("/").content.decode()
    client.force_login(user)
    assert "Warm pool" not in client.get("/").content.decode()
    admin = get_user_model().objects.create_superuser("root", password="root-password-1")
    client.force_login(admin)
    assert "Warm pool" in client.get("/admin/projects/project/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_never_get_the_same_stack(settings, fake_runtime):
    """Eight requests at once for two pooled stacks, on real threads and connections (SQLite or PostgreSQL)."""
    settings.BERTH_WARM_POOL = ((None, None, 2),)
    pool_refill()
    # The cold creates and the claims' refills are queued, not run: only who gets what is under test.
    settings.TASKS = QUEUED_ONLY
    pooled = set(Project.objects.filter(status=S.POOLED).values_list("pk", flat=True))
    owners = [get_user_model().objects.create_user(f"racer{i}", password="racer-password-1") for i in range(8)]
    barrier = threading.Barrier(len(owners))
    outcomes: list[object] = []

    def create(owner: object) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes.append(lifecycle.project_create(owner=owner))
        except Exception as exc:
            outcomes.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create, args=(owner,)) for owner in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not [o for o in outcomes if isinstance(o, Exception)]
    claims = [o for o in outcomes if isinstance(o, Operation) and o.kind == K.CLAIM]
    assert sorted(c.project_id for c in claims) == sorted(pooled)  # each stack once, both taken
    assert len({o.project_id for o in outcomes if isinstance(o, Operation)}) == len(owners)
    for pk in pooled:
        assert Operation.objects.filter(project_id=pk, kind=K.CLAIM).count() == 1
