"""Readiness probes: a project is ready when its db answers a real query with
its password and its api a real HTTP request — a published port accepts TCP
(docker-proxy) long before the service behind it does."""

import socket
import urllib.error
import urllib.request

import psycopg

from .base import StackSpec


class ProbeFailed(Exception):
    pass


def db_accepts(spec: StackSpec) -> None:
    # Before any exec: the published port answers only once the real server
    # runs (the entrypoint's initdb server listens on its socket alone).
    p = spec.db_probe
    conninfo = psycopg.conninfo.make_conninfo(host=p.host, port=p.port, dbname=p.dbname, connect_timeout=2)
    if psycopg.pq.PGconn.ping(conninfo.encode()) != psycopg.pq.Ping.OK:
        raise ProbeFailed(f"the db at {p.host}:{p.port} does not accept connections yet")


def db_answers(spec: StackSpec) -> None:
    p = spec.db_probe
    try:
        with psycopg.connect(
            host=p.host, port=p.port, user=p.user, password=p.password, dbname=p.dbname, connect_timeout=2
        ) as conn:
            conn.execute("SELECT 1").fetchone()
    except psycopg.Error as exc:
        # psycopg's message never contains the password, only host/port and the reason.
        raise ProbeFailed(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from None


def api_answers(spec: StackSpec) -> None:
    probe = spec.api_probe
    url = f"http://{spec.db_probe.host}:{spec.api.host_port}{probe.path}"
    headers = {"Content-Type": probe.content_type} if probe.content_type else {}
    request = urllib.request.Request(url, data=probe.body, method=probe.method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as exc:
        raise ProbeFailed(f"{url} does not answer ({getattr(exc, 'reason', exc)})") from None
    if status >= 500:
        raise ProbeFailed(f"{url} answered {status}")
