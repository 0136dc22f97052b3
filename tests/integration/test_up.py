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

from tests.engine import ROOT, subprocess_env, wait_for

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
        log.seek(0)
        assert "Created the superuser 'admin' with password: " in log.read()
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
