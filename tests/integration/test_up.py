"""`manage.py up` as the README has a person run it: a real web server, workers and watcher."""

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from tests.engine import ENGINE_ENV, ROOT, RUN_ID, engine_cleanup, subprocess_env, wait_for

pytestmark = pytest.mark.integration


def free_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(base: str, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{base}{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=90) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def processes_with_env(entry: str) -> list[int]:
    """Live processes whose environment holds `entry` (up's children inherit its environment)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if entry.encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=1).status == 200
    except OSError:
        return False


def test_up_serves_a_running_project_from_curl_and_stops_everything_on_ctrl_c(tmp_path):
    # Its own data directory and SQLite database, as on a fresh machine.
    env = subprocess_env(BERTH_DATA_DIR=str(tmp_path), BERTH_WORKERS="2")
    env.pop("DATABASE_URL")
    port = free_local_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "up.log", "w+")
    up = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "up", "--bind", f"127.0.0.1:{port}"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: answers(f"{base}/accounts/login/"), timeout_s=60, what="the web server to answer")
        # No terminal here (as under compose): the password is in a 0600 file, never in the log.
        password_file = tmp_path / "admin_password"
        password = password_file.read_text().strip()
        assert password and password_file.stat().st_mode & 0o777 == 0o600
        # Read through a file of its own: seeking `log` would move the offset up's children write at.
        logged = (tmp_path / "up.log").read_text()
        assert "Created the superuser 'admin'" in logged and password not in logged
        token = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "create_api_token", "admin"],
            env=env, cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

        code, project = call(base, "POST", "/v1/projects?wait=60", token, {"name": "readme"})
        assert (code, project["status"]) == (201, "running"), project
        with psycopg.connect(project["db_url"], connect_timeout=3) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        pid = project["project_id"]
        assert call(base, "DELETE", f"/v1/projects/{pid}?wait=60", token)[1]["status"] == "deleted"
        code, purged = call(base, "POST", f"/v1/projects/{pid}/purge?wait=90", token, {"confirm": pid})
        assert purged["status"] == "purged", purged
    finally:
        up.send_signal(signal.SIGINT)  # what Ctrl-C sends
        up.wait(timeout=40)
    log.seek(0)
    output = log.read()
    assert up.returncode == 0, output[-2000:]
    assert "Berth stopped." in output
    time.sleep(0.5)
    assert not answers(f"{base}/accounts/login/")  # the web server went with it
    assert processes_with_env(f"BERTH_DATA_DIR={tmp_path}") == [], "children of up outlived it"


def start_up(env: dict, port: int, log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "up", "--bind", f"127.0.0.1:{port}"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def api_token(env: dict) -> str:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "create_api_token", "admin"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip


def test_up_the_readme_way_without_the_public_images_offers_what_it_can_build_and_a_project_runs(tmp_path, docker_engine):
    """No image settings, no registry: `up` finds or builds Berth's own images, and the first create runs."""
    public = [i for i in ("postgres:17", "postgrest/postgrest:v12.2.8", "graphile/postgraphile:4") if docker_engine.images.list(name=i)]
    if public:
        pytest.skip(f"this engine has public images ({', '.join(public)}): the README way would not need Berth's own")
    label = f"berth.test={RUN_ID}-readme"  # a label scope of its own: cleaned up below, whatever happens
    env = {k: v for k, v in subprocess_env().items() if not k.startswith("BERTH_") and k != "DATABASE_URL"}
    env.update(
        BERTH_DATA_DIR=str(tmp_path), BERTH_WORKERS="2", BERTH_EXTRA_LABELS=label, BERTH_PUBLIC_HOST="127.0.0.1",
        BERTH_DB_PORTS=ENGINE_ENV["BERTH_DB_PORTS"], BERTH_API_PORTS=ENGINE_ENV["BERTH_API_PORTS"],
    )  # fmt: skip
    port = free_local_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "up.log", "w+")
    up = start_up(env, port, log)
    try:
        # Building the images, when they are missing, takes minutes (once).
        wait_for(lambda: answers(f"{base}/accounts/login/"), timeout_s=900, what="up to check the images and serve", interval_s=1)
        log.seek(0)
        output = log.read()
        assert "PostgREST cannot be had here: new projects default to PostGraphile." in output, output[-3000:]
        assert "Offering PostgreSQL 15, 17 with PostGraphile." in output, output[-3000:]
        token = api_token(env)
        code, project = call(base, "POST", "/v1/projects?wait=90", token, {"name": "readme"})
        assert (code, project["status"], project["api"], project["postgres_version"]) == (201, "running", "postgraphile", "17"), project
        with psycopg.connect(project["db_url"], connect_timeout=3) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        code, refused = call(base, "POST", "/v1/projects", token, {"api": "postgrest"})
        assert (code, refused["error"]["field"]) == (400, "api"), refused
        images = {c.image.tags[0] for c in docker_engine.containers.list(filters={"label": label}) if c.image.tags}
        # The PostGIS variant, where it was built (.ci/run builds it), runs 17: it is a superset.
        postgres = "berth/postgres:17-postgis" if docker_engine.images.list(name="berth/postgres:17-postgis") else "berth/postgres:17"
        assert images == {postgres, "berth/postgraphile:4"}
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
        engine_cleanup(docker_engine, label)
    assert up.returncode == 0


def test_up_killed_with_kill_9_takes_its_children_along_and_starts_again_cleanly(tmp_path):
    env = subprocess_env(BERTH_DATA_DIR=str(tmp_path), BERTH_WORKERS="2")
    env.pop("DATABASE_URL")
    port = free_local_port()
    base = f"http://127.0.0.1:{port}"
    marker = f"BERTH_DATA_DIR={tmp_path}"
    log = open(tmp_path / "up.log", "w+")
    up = start_up(env, port, log)
    try:
        wait_for(lambda: answers(f"{base}/accounts/login/"), timeout_s=120, what="the web server to answer")
        children = set(processes_with_env(marker)) - {up.pid}
        assert len(children) >= 5  # gunicorn (and its workers), 2 workers, the watcher, the backup pass
        up.kill()  # kill -9: no chance to stop anything itself
        up.wait()
        wait_for(lambda: not processes_with_env(marker), timeout_s=40, what="up's children to die with it")

        up = start_up(env, port, log)
        wait_for(lambda: answers(f"{base}/accounts/login/"), timeout_s=120, what="the restarted web server to answer")
        code, project = call(base, "POST", "/v1/projects?wait=120", api_token(env), {"name": "after-kill"})
        log.seek(0)
        assert (code, project["status"]) == (201, "running"), (project, log.read()[-4000:])
        time.sleep(3)  # a child that failed on a port in use would have exited by now
        assert up.poll() is None
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            up.wait(timeout=40)
    log.seek(0)
    output = log.read()
    assert "right after starting" not in output and "Address already in use" not in output, output[-3000:]
    time.sleep(0.5)
    assert processes_with_env(marker) == [], "children of up outlived it"
