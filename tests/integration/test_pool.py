"""The warm pool on the real engine with real workers: a claimed stack is a working project with its own secrets, and the pool refills."""

import json

import psycopg
import pytest

from projects.models import Project
from projects.services.pool.requests import pool_refill
from tests.conftest import bearer
from tests.engine import wait_for
from tests.integration.test_lifecycle import graphql, item_names

pytestmark = pytest.mark.integration

S = Project.Status


def ready_stacks() -> int:
    return Project.objects.filter(owner__isnull=True, status=S.POOLED, health=Project.Health.HEALTHY).count()


@pytest.mark.backend
def test_a_claimed_stack_serves_its_own_db_url_and_api_url_and_the_pool_refills(workers, user, client, settings):
    settings.BERTH_WARM_POOL = ((None, None, 2),)
    pool_refill()
    wait_for(lambda: ready_stacks() == 2, timeout_s=120, what="two pooled stacks", interval_s=0.25)
    failed = Project.objects.filter(owner__isnull=True, status=S.FAILED)
    assert not failed.exists(), [op.error for p in failed for op in p.operations.all()]

    headers = bearer(user)
    answers = [client.post("/v1/projects", data={"name": name}, content_type="application/json", **headers) for name in ("a", "b")]
    assert [a.status_code for a in answers] == [202, 202]
    a, b = (answer.json() for answer in answers)
    for created in (a, b):
        assert created["status"] == "running" and created["operation"]["kind"] == "claim"
        assert created["operation"]["state"] == "succeeded"
    assert a["project_id"] != b["project_id"] and a["db_url"] != b["db_url"] and a["anon_key"] != b["anon_key"]

    # Its db_url is a working database with its own password, and no other stack's.
    with psycopg.connect(a["db_url"], connect_timeout=3) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == ("app", "app")
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items (name) VALUES ('anchor'), ('rope')")
        conn.execute("GRANT SELECT ON items TO anon")
    a_password = psycopg.conninfo.conninfo_to_dict(a["db_url"])["password"]
    b_elsewhere = psycopg.conninfo.make_conninfo(b["db_url"], password=a_password)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(b_elsewhere, connect_timeout=3)

    # Its api_url serves the table with its own keys; another stack's key is refused there.
    assert wait_for(lambda: item_names(a["api_url"], a["anon_key"]), timeout_s=30, what="the api to serve the table") == ["anchor", "rope"]
    # The service key's schema is another instance's, which sees the table on its own watch (stack/postgraphile.py).
    assert wait_for(lambda: item_names(a["api_url"], a["service_key"]), timeout_s=30, what="the service key's schema") == ["anchor", "rope"]
    refused = graphql(a["api_url"], "{ __typename }", b["service_key"])
    assert refused.get("errors"), json.dumps(refused)

    # Each claim queued a replacement: the pool is full again.
    wait_for(lambda: ready_stacks() == 2, timeout_s=120, what="the pool to refill", interval_s=0.25)
    listed = client.get("/v1/projects", **headers).json()["projects"]
    assert sorted(p["project_id"] for p in listed) == sorted([a["project_id"], b["project_id"]])
