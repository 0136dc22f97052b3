"""`manage.py up`: everything Berth needs, in one foreground command.

Migrates, creates the `admin` superuser on the first run (its password is
printed once to a terminal, or written to DATA_DIR/admin_password, mode 0600,
when there is none: never into a container's log), then runs and supervises: the web server (gunicorn), BERTH_WORKERS task
workers (django-tasks-db's db_worker runs one task at a time, so operations on
different projects run in parallel only with several), the sync watcher and
the backup pass (`backup_projects --watch`: schedules and retention).
Ctrl-C (or SIGTERM) stops them all.

Before it serves, it checks the images of every offered version and flavour
(services/fleet/images.py: present, pulled, or built) and records what can run.
The children die with `up`, even with `kill -9` (a parent-death signal), and a
lock in the data directory keeps a second `up` out while one runs; processes
a killed `up` left behind are stopped before the next one starts its own.
"""

import ctypes
import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from django.db.migrations.executor import MigrationExecutor

from projects.runtime import RuntimeFailure
from projects.stack.images import API_LABELS, offer
from projects.services.fleet.images import images_ensure

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")
PR_SET_PDEATHSIG = 1
ADMIN_PASSWORD_FILE = "admin_password"


class Command(BaseCommand):
    help = "Migrate, ensure an admin account, and run the web server, the workers and the sync watcher."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT for the web server (default 127.0.0.1:8000)")
        parser.add_argument("--workers", type=int, default=settings.BERTH_WORKERS, help="task worker processes")
        parser.add_argument("--no-web", action="store_true", help="run only the workers and the watcher (compose's worker service)")
        parser.add_argument("--no-worker", action="store_true", help="run only the web server (compose's web service)")

    def handle(self, *, bind: str, workers: int, no_web: bool, no_worker: bool, **options: Any) -> None:
        host, sep, port = bind.rpartition(":")
        if not sep or not port.isdigit():
            raise CommandError(f"--bind must be HOST:PORT, got {bind!r}")
        roles = [role for role, off in (("web", no_web), ("workers", no_worker)) if not off]
        locks = [self._lock(role) for role in roles]  # held until this process ends
        for role in roles:
            self._stop_survivors(role)
        if no_web:
            # compose runs web and worker side by side: web migrates, the worker waits.
            self._wait_for_migrations()
        else:
            call_command("migrate", interactive=False, verbosity=0)
            self._ensure_admin()
            self._check_images()

        commands: dict[str, list[str]] = {}
        if not no_web:
            commands["web"] = [
                sys.executable, "-m", "gunicorn", "controlplane.wsgi",
                "--bind", bind, "--worker-class", "gthread", "--workers", "2", "--threads", "8",
                # ?wait=N holds a request up to 120 s.
                "--timeout", "150", "--access-logfile", "-",
                # One control socket per user by default: two Berths on a host would share it.
                "--no-control-socket",
            ]  # fmt: skip
        if not no_worker:
            for n in range(workers):
                commands[f"worker-{n + 1}"] = [
                    # `worker` is db_worker after failing what dead workers left in flight.
                    sys.executable, MANAGE, "worker", "--no-reload", "--no-startup-delay", "--interval", str(settings.BERTH_POLL_SECONDS),
                ]  # fmt: skip
            commands["sync"] = [sys.executable, MANAGE, "sync_projects", "--watch"]
            # The watcher refills the warm pool with at most BERTH_WORKERS - 1
            # operations at once: the workers actually started, if --workers said otherwise.
            os.environ["BERTH_WORKERS"] = str(max(1, workers))
            # Scheduled backups and retention: django-tasks has no cron, so a pass every minute.
            commands["backups"] = [sys.executable, MANAGE, "backup_projects", "--watch"]
        self._supervise(commands, bind if not no_web else None, roles)
        del locks

    def _wait_for_migrations(self) -> None:
        while True:
            try:
                executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
                if not executor.migration_plan(executor.loader.graph.leaf_nodes()):
                    return
            except OperationalError as exc:
                self.stderr.write(f"waiting for the database: {exc}")
            self.stdout.write("waiting for the web service to apply migrations…")
            time.sleep(2)

    def _ensure_admin(self) -> None:
        User = get_user_model()
        if User.objects.filter(username="admin").exists():
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", "", password)
        if sys.stdout.isatty():
            # A person at a terminal reads it once; nothing keeps it.
            self.stdout.write(self.style.SUCCESS(f"Created the superuser 'admin' with password: {password}"))
            self.stdout.write("It is shown this once; change it in the admin or with `manage.py changepassword admin`.")
            return
        # No terminal (compose, systemd): stdout goes to a log that anyone with
        # `docker logs` reads for ever. The password goes to a file only
        # Berth's user can read instead.
        path = Path(settings.DATA_DIR) / ADMIN_PASSWORD_FILE
        path.unlink(missing_ok=True)  # an older admin's: it is the new password now
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        self.stdout.write(self.style.SUCCESS(f"Created the superuser 'admin'; its password is in {path} (mode 0600)."))
        self.stdout.write("Read it once, sign in, change it, and delete the file.")

    def _check_images(self) -> None:
        """Make the images of every offering available if they can be had, and say what is offered."""
        say = lambda line: self.stdout.write(f"  {line}")  # noqa: E731
        self.stdout.write("Checking the images of every PostgreSQL version and API flavour…")
        try:
            current = images_ensure(say=say)
        except RuntimeFailure as exc:
            # Never a reason not to start: the dashboard says the engine is down.
            self.stderr.write(f"warning: the images could not be checked ({exc}); offering what the last check found")
            return
        versions = ", ".join(sorted(current.postgres, key=int)) or "none"
        flavours = ", ".join(API_LABELS[a] for a in sorted(current.api)) or "none"
        self.stdout.write(f"Offering PostgreSQL {versions} with {flavours}.")
        wanted_api = settings.BERTH_DEFAULT_API
        if current.default_api and current.default_api != wanted_api:
            self.stdout.write(
                f"{API_LABELS[wanted_api]} cannot be had here: new projects default to {API_LABELS[current.default_api]}."
            )
        wanted_version = settings.BERTH_DEFAULT_POSTGRES_VERSION
        if current.default_postgres_version and current.default_postgres_version != wanted_version:
            self.stdout.write(
                f"PostgreSQL {wanted_version} cannot be had here: new projects default to PostgreSQL {current.default_postgres_version}."
            )

    # --- one `up` per data directory, and nothing left behind ---------------------------

    def _lock(self, role: str) -> IO[str]:
        """Hold `up-<role>.lock` in the data directory for this process's life; refuse if another `up` holds it."""
        path = Path(settings.DATA_DIR) / f"up-{role}.lock"
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise CommandError(
                f"another `manage.py up` (pid {holder}) runs the {role} with this data directory ({settings.DATA_DIR}); stop it first"
            ) from None
        # The kernel releases a flock when its holder dies, kill -9 included: no stale lock to clean up.
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    def _stop_survivors(self, role: str) -> None:
        """Stop what a previous `up` of this role left running (it was killed before it could); say so."""
        path = _children_file(role)
        try:
            recorded = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid, started in recorded.get("children", []) if _process_started(pid) == started]
        if not alive:
            path.unlink(missing_ok=True)
            return
        self.stderr.write(
            f"A previous `up` (pid {recorded.get('up')}) left {len(alive)} process(es) of the {role} running: stopping them"
        )
        _kill_groups(alive, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_process_started(pid) is not None for pid in alive):
            time.sleep(0.2)
        _kill_groups(alive, signal.SIGKILL)
        path.unlink(missing_ok=True)

    def _supervise(self, commands: dict[str, list[str]], bind: str | None, roles: list[str]) -> None:
        stopping = False

        def stop(*_: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)

        def spawn(name: str) -> subprocess.Popen[bytes]:
            # Each child leads its own process group: a terminal's Ctrl-C reaches
            # only `up`, which then stops every child once, in order, and can
            # kill a child's whole group (gunicorn's workers too) if it hangs.
            # And dies with `up`, however `up` ends (kill -9 included): the kernel
            # sends it SIGTERM when its parent goes (Linux's parent-death signal).
            return subprocess.Popen(commands[name], start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))

        def record() -> None:
            # Whatever outlives us anyway (another OS, a child that ignores SIGTERM) the next `up` stops.
            for role in roles:
                mine = [c for name, c in children.items() if _role(name) == role]
                children_file = _children_file(role)
                tmp = children_file.with_suffix(".tmp")
                tmp.write_text(json.dumps({"up": os.getpid(), "children": [[c.pid, _process_started(c.pid)] for c in mine]}))
                os.replace(tmp, children_file)

        children = {name: spawn(name) for name in commands}
        record()
        started = {name: time.monotonic() for name in commands}
        if bind:
            self.stdout.write(f"Berth is up: http://{bind}/ (Ctrl-C stops it)")
        failed = ""
        try:
            while not stopping and not failed:
                time.sleep(0.5)
                for name, child in list(children.items()):
                    if child.poll() is None or stopping:
                        continue
                    if time.monotonic() - started[name] < 10:
                        # Dying right after start (a taken port, a bad setting)
                        # would only die again: stop everything and say so.
                        failed = f"{name} exited with {child.returncode} right after starting; see its output above"
                        break
                    # A child that dies later (OOM, a kill) is replaced; an
                    # operation it was running is settled as stale by sync.
                    self.stderr.write(f"{name} exited with {child.returncode}; restarting it")
                    children[name], started[name] = spawn(name), time.monotonic()
                    record()
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for child in children.values():
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
            for role in roles:
                _children_file(role).unlink(missing_ok=True)
            self.stdout.write("Berth stopped.")
        if failed:
            raise CommandError(failed)


def _role(name: str) -> str:
    return "web" if name == "web" else "workers"


def _children_file(role: str) -> Path:
    return Path(settings.DATA_DIR) / f"up-{role}.children"


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A preexec_fn: ask the kernel for SIGTERM when the parent dies (Linux); elsewhere the children file covers it."""

    def preexec() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:  # the parent died between fork and prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec if sys.platform == "linux" else None


def _process_started(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None if it is gone): a pid plus this names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields counted after the command name, which is in parentheses and may hold spaces:
    # the state (a zombie has ended: only its parent's wait is missing), then field 22.
    fields = stat.rpartition(")")[2].split()
    return None if fields[0] in {"Z", "X"} else int(fields[19])


def _kill_groups(pids: list[int], sig: signal.Signals) -> None:
    # Each child leads its own group (start_new_session): its own children (gunicorn's workers) go too.
    for pid in pids:
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
