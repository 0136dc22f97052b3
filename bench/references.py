"""The two references Berth is measured against, on the same images, ports and probes.

- floor: the fewest engine calls that can make a project — network, volume, two
  containers created and started with the SDK's low-level API, nothing else.
- compose: what a hand-made control plane does — a compose file and an .env per
  project, `docker-compose up -d` (Debian's docker-compose).

Both make the same containers Berth does (confinement, files copied in, the
roles' bootstrap) and are probed exactly as Berth probes a project
(projects.runtime.probes: a real query with the project's password, a real
GraphQL answer) and carry only the benchmark's label, so Berth's own sync never
sees them.
"""

import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import docker

from bench.common import LABEL
from projects.runtime.docker_common import _confinement
from projects.runtime.wire import tar_archive

NS = 1_000_000_000


def free_port(low: int, high: int, taken: set[int]) -> int:
    from projects.services.ports import port_is_free_on_host

    for port in range(low, high + 1):
        if port not in taken and port_is_free_on_host(port):
            taken.add(port)
            return port
    raise RuntimeError("no free port for a reference stack")


def reference_spec(db_port: int, api_port: int, *, stock_retry: bool = True):
    """Berth's own spec for a project that is not in the database: the same containers.

    With `stock_retry` (the references) the api retries its first connection
    as PostGraphile's image does out of the box, `--retry-on-init-fail`
    (waits of 100·n² ms), rather than by Berth's rc file: what Berth does
    differently from a bare SDK call is Berth's to show, not the floor's.
    """
    from projects.models import Project
    from projects.stack.spec import stack_spec

    project = Project(public_id=secrets.token_hex(6), name="ref", postgres_version="17", api_flavour="postgraphile",
                      db_port=db_port, api_port=api_port)  # fmt: skip
    project.db_password = secrets.token_urlsafe(24)
    project.jwt_secret = secrets.token_urlsafe(48)
    project.admin_password = secrets.token_urlsafe(16)
    project.authenticator_password = secrets.token_urlsafe(16)
    spec = stack_spec(project)
    return stock_api(spec) if stock_retry else spec


def stock_api(spec):
    """The spec with PostGraphile's own retry (`--retry-on-init-fail`) instead of Berth's rc file."""
    import dataclasses

    from projects.stack.postgraphile import POSTGRAPHILE_RC_PATH, watching_sql

    api = spec.api
    if api.command is None or "--retry-on-init-fail" in api.command:
        return spec
    api = dataclasses.replace(
        api,
        command=[*api.command, "--retry-on-init-fail"],
        files=tuple(f for f in api.files if f.path != POSTGRAPHILE_RC_PATH),
        working_dir=None,
    )
    # Without the rc file there is no anonymous instance (its plugin is named there): one listener.
    return dataclasses.replace(spec, api=api, api_probe=dataclasses.replace(spec.api_probe, ready_sql=watching_sql(1)))


def probe_until_ready(spec, timeout_s: float = 60, *, bootstrap=None) -> None:
    """Probe as Berth does; `bootstrap` (the db's role SQL, run once the db accepts) as Berth runs it."""
    from projects.runtime.probes import ProbeFailed, api_answers, db_accepts, db_answers

    deadline = time.monotonic() + timeout_s
    steps = [db_accepts, *([bootstrap] if bootstrap and spec.db_probe.bootstrap_sql else []), db_answers, api_answers]
    for probe in steps:
        while True:
            try:
                probe(spec)
                break
            except ProbeFailed:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


class Floor:
    name = "floor (bare SDK)"
    ready_timeout_s = 60.0
    # Off: the floor's containers have no healthcheck. On (provision.py --floor-healthcheck): the db's
    # pg_isready healthcheck as Berth makes it, to tell its share of Berth's time over the floor.
    with_healthcheck = False

    def healthcheck(self, c) -> dict | None:
        h = c.healthcheck
        if not (self.with_healthcheck and h):
            return None
        return {"test": h.test, "interval": int(h.interval_s * NS), "timeout": int(h.timeout_s * NS), "retries": h.retries,
                "start_period": int(h.start_period_s * NS)}  # fmt: skip

    def __init__(self) -> None:
        self.api = docker.from_env().api
        self.labels = dict([LABEL.split("=")])

    def up(self, spec) -> None:
        api = self.api
        api.create_network(spec.network, driver="bridge", labels=self.labels)
        api.create_volume(spec.volume, labels=self.labels)
        for c in spec.containers:
            host_config = api.create_host_config(
                port_bindings={c.container_port: (c.publish_host, c.host_port)},
                binds={spec.volume: {"bind": c.volume_mount, "mode": "rw"}} if c.volume_mount else None,
                mem_limit=c.mem_limit,
                network_mode=spec.network,
                **_confinement(c.confinement),
            )
            api.create_container(
                c.image, command=c.command, name=c.name, environment=c.environment, labels=self.labels,
                ports=[c.container_port], host_config=host_config, healthcheck=self.healthcheck(c),
                volumes=[c.volume_mount] if c.volume_mount else None, working_dir=c.working_dir,
            )  # fmt: skip
            if c.files:
                api.put_archive(c.name, "/", tar_archive(c.files))
        for c in spec.containers:
            api.start(c.name)
        probe_until_ready(spec, self.ready_timeout_s, bootstrap=self.bootstrap)

    def stop(self, spec) -> None:
        for c in reversed(spec.containers):
            self.api.stop(c.name, timeout=c.stop_timeout_s)

    def start(self, spec) -> None:
        for c in spec.containers:
            self.api.start(c.name)
        probe_until_ready(spec, bootstrap=self.bootstrap)

    def bootstrap(self, spec) -> None:
        """The roles and grants, with psql in the db container, secrets in the exec's environment."""
        from projects.runtime.base import BOOTSTRAP_ARGV
        from projects.runtime.probes import ProbeFailed

        p = spec.db_probe
        exec_id = self.api.exec_create(spec.db.name, BOOTSTRAP_ARGV, environment={**p.bootstrap_env, "BERTH_SQL": p.bootstrap_sql})["Id"]
        self.api.exec_start(exec_id)
        if self.api.exec_inspect(exec_id)["ExitCode"] != 0:
            raise ProbeFailed("bootstrap failed")

    def remove_containers(self, spec) -> None:
        for c in spec.containers:
            self.api.remove_container(c.name, force=True)

    def recreate_stopped(self, spec) -> None:
        for c in spec.containers:
            host_config = self.api.create_host_config(
                port_bindings={c.container_port: (c.publish_host, c.host_port)},
                binds={spec.volume: {"bind": c.volume_mount, "mode": "rw"}} if c.volume_mount else None,
                mem_limit=c.mem_limit,
                network_mode=spec.network,
                **_confinement(c.confinement),
            )
            self.api.create_container(
                c.image, command=c.command, name=c.name, environment=c.environment, labels=self.labels,
                ports=[c.container_port], host_config=host_config,
                volumes=[c.volume_mount] if c.volume_mount else None, working_dir=c.working_dir,
            )  # fmt: skip

    def down(self, spec) -> None:
        for c in spec.containers:
            try:
                self.api.remove_container(c.name, force=True)
            except docker.errors.NotFound:
                pass
        self.api.remove_network(spec.network)
        self.api.remove_volume(spec.volume)


COMPOSE_FILE = """\
version: "3.8"
services:
  db:
    image: ${{PG_IMAGE}}
    command: {db_command}
    environment:
      POSTGRES_USER: app
      POSTGRES_DB: app
      POSTGRES_PASSWORD: ${{DB_PASSWORD}}
    ports: ["127.0.0.1:${{DB_PORT}}:5432"]
    volumes: ["data:/var/lib/postgresql/data"]
    mem_limit: 512m
    restart: unless-stopped
    labels: {{{label_key}: "{label_value}"}}
  api:
    image: ${{API_IMAGE}}
    command: ["--connection", "postgres://app:${{DB_PASSWORD}}@db:5432/app", "--host", "0.0.0.0", "--port", "5000",
              "--schema", "public", "--retry-on-init-fail", "--watch", "--dynamic-json", "--disable-query-log"]
    ports: ["127.0.0.1:${{API_PORT}}:5000"]
    mem_limit: 256m
    restart: unless-stopped
    labels: {{{label_key}: "{label_value}"}}
volumes:
  data:
    labels: {{{label_key}: "{label_value}"}}
networks:
  default:
    labels: {{{label_key}: "{label_value}"}}
"""


class Compose:
    name = "compose (docker-compose up -d)"

    def __init__(self) -> None:
        if not shutil.which("docker-compose"):
            raise RuntimeError("docker-compose is not installed: apt-get install docker-compose")
        self.root = Path(tempfile.mkdtemp(prefix="berth-bench-compose-"))
        self.dirs: dict[str, Path] = {}

    def up(self, spec) -> None:
        directory = self.root / spec.project_id
        directory.mkdir()
        key, value = LABEL.split("=")
        db_command = "[" + ", ".join(f'"{arg}"' for arg in spec.db.command) + "]"
        (directory / "docker-compose.yml").write_text(
            COMPOSE_FILE.format(db_command=db_command, label_key=key, label_value=value)
        )
        (directory / ".env").write_text(
            f"PG_IMAGE={spec.db.image}\nAPI_IMAGE={spec.api.image}\nDB_PASSWORD={spec.db_probe.password}\n"
            f"DB_PORT={spec.db.host_port}\nAPI_PORT={spec.api.host_port}\n"
        )
        self.dirs[spec.project_id] = directory
        subprocess.run(["docker-compose", "-p", f"bench{spec.project_id}", "up", "-d", "--quiet-pull"],
                       cwd=directory, check=True, capture_output=True)  # fmt: skip
        probe_until_ready(spec)

    def down(self, spec) -> None:
        subprocess.run(["docker-compose", "-p", f"bench{spec.project_id}", "down", "-v", "-t", "1"],
                       cwd=self.dirs[spec.project_id], check=False, capture_output=True)  # fmt: skip
