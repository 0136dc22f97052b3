"""No token from a query string reaches a log: gunicorn's access log as `up` runs it, and Django's request logging."""

import logging
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

from django.conf import settings

from controlplane.access_log import RedactQueryFilter, redact_query, redact_query_string
from projects.management.commands.up import web_command

SECRETS = ("berth_SECRET1", "berth_SECRET2", "berth_SECRET3", "berth_SECRET4")


def test_secret_parameters_are_redacted_by_name_whatever_their_case_or_encoding():
    line = "GET /v1/projects?limit=5&access_token=a1&Token=b2;KEY=c3&%74oken=d4&monkey=kept&key_id=kept HTTP/1.1"
    assert redact_query(line) == (
        "GET /v1/projects?limit=5&access_token=[redacted]&Token=[redacted];KEY=[redacted]&%74oken=[redacted]"
        "&monkey=kept&key_id=kept HTTP/1.1"
    )
    assert redact_query("https://x.test/p?token=abc#frag") == "https://x.test/p?token=[redacted]#frag"
    assert redact_query_string("token=abc&page=2") == "token=[redacted]&page=2"
    assert redact_query("no query here") == "no query here"


def test_djangos_request_loggers_redact_them():
    for name in ("django.server", "django.request"):
        assert any(isinstance(f, RedactQueryFilter) for f in logging.getLogger(name).filters), name
    record = logging.LogRecord("django.server", logging.INFO, __file__, 1, '"%s" %s %s', ("GET /x?key=berth_SECRET1 HTTP/1.1", 200, 9), None)
    RedactQueryFilter().filter(record)
    assert record.getMessage() == '"GET /x?key=[redacted] HTTP/1.1" 200 9'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_as_up_runs_it_logs_requests_without_the_tokens_in_their_query_strings(tmp_path):
    port = _free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "controlplane.settings", "BERTH_DATA_DIR": str(tmp_path)}
    server = subprocess.Popen(
        web_command(f"127.0.0.1:{port}"), cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}/v1/projects?limit=5&access_token={SECRETS[0]}&Token={SECRETS[1]}&KEY={SECRETS[2]}"
    request = urllib.request.Request(url, headers={"Referer": f"http://127.0.0.1:{port}/page?token={SECRETS[3]}"})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(request, timeout=5)
            except urllib.error.HTTPError as exc:
                assert exc.code == 401  # no Authorization header: the query's token is never read
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not start"
                time.sleep(0.2)
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0]
    assert "GET /v1/projects?limit=5&access_token=[redacted]&Token=[redacted]&KEY=[redacted]" in log, log
    assert "/page?token=[redacted]" in log, log
    assert not any(secret in log for secret in SECRETS), log
