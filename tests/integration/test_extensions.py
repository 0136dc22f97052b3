"""The extensions apps reach for (issue 26, item 3), on the real engine, as the owner `app` over its db_url.

One project per major, on Berth's PostGIS variants (`berth/postgres:<major>-postgis`,
supersets of the plain images: the same recipe plus PostGIS), each with every
check: `vector` made and a nearest-neighbour query answered, `postgis` made and
a distance answered (`postgis_raster`, which reads files, refused), and a
pg_cron job scheduled by `app` that runs as `app` (its run waited for on 17, where
schedules are in seconds) and never for a superuser; then
15's is upgraded to 17 and keeps all three.
The plain images are checked for what they ship without starting a server.
The test builds nothing: `.ci/run`'s images phase builds the variants.
"""

import time

import psycopg
import pytest

from projects.models import Project
from tests.conftest import bearer
from tests.engine import TEST_LABEL, Workers, api_act, unavailable, wait_for

pytestmark = pytest.mark.integration

VARIANTS = {"15": "berth/postgres:15-postgis", "17": "berth/postgres:17-postgis"}
# pg_cron 1.4 (bookworm's, on 15) schedules in minutes; 1.6 (trixie's, on 17) in seconds too.
SCHEDULE = {"15": "* * * * *", "17": "1 seconds"}


@pytest.fixture
def variants(engine, settings):
    missing = [image for image in VARIANTS.values() if not engine.images.list(name=image)]
    if missing:
        unavailable(f"Berth's PostGIS variants missing: {', '.join(missing)} (`uv run manage.py images build {' '.join(missing)}`)")
    settings.BERTH_POSTGRES_IMAGES = dict(VARIANTS)
    return ",".join(f"{major}={image}" for major, image in VARIANTS.items())


@pytest.fixture
def workers(transactional_db, tmp_path, variants):
    pool = Workers(2, tmp_path, BERTH_POSTGRES_IMAGES=variants)
    pool.start()
    yield pool
    pool.stop()


def run(db_url: str, *statements: str) -> list[tuple]:
    """The statements as `app`, in one session; the last one's rows."""
    with psycopg.connect(db_url, connect_timeout=5, autocommit=True) as conn:
        rows: list[tuple] = []
        for statement in statements:
            cursor = conn.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
        return rows


def test_plain_images_ship_vector_trusted_and_pg_cron_preloaded_but_no_postgis(engine):
    script = (
        'cd /usr/share/postgresql/$PG_MAJOR/extension && grep -h "^trusted" vector.control && ls pg_cron.control '
        '&& ! ls postgis.control 2>/dev/null && grep -c "shared_preload_libraries=pg_cron" /usr/local/bin/docker-entrypoint.sh'
    )
    for major in ("15", "17"):
        out = engine.containers.run(
            f"berth/postgres:{major}", ["-c", script], entrypoint=["sh"], remove=True,
            tmpfs={"/var/lib/postgresql/data": ""}, labels=dict([TEST_LABEL.split("=", 1)]),
        )  # fmt: skip
        assert out.decode().split() == ["trusted", "=", "true", "pg_cron.control", "1"], (major, out)


def test_app_makes_vector_and_postgis_and_its_pg_cron_jobs_run_as_app_on_15_and_17(engine, workers, user, client):
    headers = bearer(user)
    made = {}
    for major in ("15", "17"):
        code, project = api_act(client, headers, "post", "/v1/projects", {"name": f"ext{major}", "postgres_version": major}, wait=None)
        assert code in (201, 202), project
        made[major] = project["project_id"]
    wait_for(lambda: Project.objects.filter(public_id__in=made.values(), status="running").count() == 2,
             timeout_s=120, what="both projects running", interval_s=0.25)  # fmt: skip
    urls = {major: Project.objects.get(public_id=pid).db_url().replace("localhost", "127.0.0.1") for major, pid in made.items()}
    for major, pid in made.items():
        assert engine.containers.get(f"project_{pid}_db").attrs["Config"]["Image"] == VARIANTS[major]

    # pg_cron first, so that 17's job has run by the time the rest is checked.
    for major, db_url in urls.items():
        run(
            db_url,
            "CREATE TABLE public.ran (who text NOT NULL, superuser text NOT NULL)",
            "SELECT cron.schedule('berth-test', '" + SCHEDULE[major] + "', "
            "$$INSERT INTO public.ran VALUES (current_user, pg_catalog.current_setting('is_superuser'))$$)",
        )
        assert run(db_url, "SELECT username FROM cron.job") == [("app",)]
        # Only a superuser may name another role as a job's user.
        with pytest.raises(psycopg.Error, match="permission denied|must be superuser"):
            run(db_url, "SELECT cron.schedule_in_database('as-admin', '* * * * *', 'SELECT 1', 'app', 'berth_admin')")

    for major, db_url in urls.items():
        assert run(db_url, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user") == [(False,)]
        nearest = run(
            db_url,
            "CREATE EXTENSION vector",
            "CREATE TABLE public.items (id int PRIMARY KEY, embedding vector(3))",
            "INSERT INTO public.items VALUES (1, '[1,2,3]'), (2, '[4,5,6]'), (3, '[9,9,9]')",
            "CREATE INDEX ON public.items USING hnsw (embedding vector_l2_ops)",
            "SELECT id FROM public.items ORDER BY embedding <-> '[5,5,5]' LIMIT 1",
        )
        assert nearest == [(2,)], major
        assert run(db_url, "CREATE EXTENSION postgis", "SELECT ST_Distance('POINT(0 0)'::geometry, 'POINT(3 4)'::geometry)") == [(5.0,)]
        # GDAL reads files: raster stays a superuser's to create.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            run(db_url, "CREATE EXTENSION postgis_raster")

    # A job's run is waited for on 17 only: 15's pg_cron (1.4) runs on the minute, up to a minute of CI for
    # the same code path (a background worker as the job's user), and 15's job is already shown to be app's.
    started = time.monotonic()
    for major, db_url in [("17", urls["17"])]:
        wait_for(lambda: run(db_url, "SELECT count(*) FROM public.ran")[0][0] > 0,
                 timeout_s=75, what=f"the pg_cron job on {major}", interval_s=0.5)  # fmt: skip
        assert set(run(db_url, "SELECT who, superuser FROM public.ran")) == {("app", "off")}, major
        assert set(run(db_url, "SELECT username, status FROM cron.job_run_details")) <= {("app", "succeeded"), ("app", "running")}
    print(f"pg_cron jobs seen {time.monotonic() - started:.1f} s after the other checks")

    # An upgrade (a dump, a restore into the new major's variant) keeps the embeddings, the geometry
    # and the job, still app's: pgvector 0.8 on both, PostGIS 3.3 → 3.5, pg_cron 1.4 → 1.6.
    code, upgraded = api_act(client, headers, "post", f"/v1/projects/{made['15']}/upgrade", {"postgres_version": "17"})
    assert code == 200 and upgraded["operation"]["state"] == "succeeded", upgraded["operation"]["error"]
    db_url = urls["15"]
    assert run(db_url, "SELECT id FROM public.items ORDER BY embedding <-> '[5,5,5]' LIMIT 1") == [(2,)]
    assert run(db_url, "SELECT ST_Distance('POINT(0 0)'::geometry, 'POINT(3 4)'::geometry)") == [(5.0,)]
    assert run(db_url, "SELECT jobname, schedule, username FROM cron.job") == [("berth-test", "* * * * *", "app")]
