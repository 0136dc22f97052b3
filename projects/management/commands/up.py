"""`manage.py up`: everything Berth needs, in one foreground command.

Migrates, creates the `admin` superuser on the first run (printing its password
once), then runs and supervises: the web server (gunicorn), BERTH_WORKERS task
workers (django-tasks-db's db_worker runs one task at a time, so operations on
different projects run in parallel only with several), the sync watcher and
the backup pass (`backup_projects --watch`: schedules and retention).
Ctrl-C (or SIGTERM) stops them all.
"""

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from django.db.migrations.executor import MigrationExecutor

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")


class Command(BaseCommand):
    help = "Migrate, ensure an admin account, and run the web server, the workers and the sync watcher."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT for the web server (default 127.0.0.1:8000)")
        parser.add_argument("--workers", type=int, default=settings.BERTH_WORKERS, help="task worker processes")
        parser.add_argument("--no-web", action="store_true", help="run only the workers and the watcher (compose's worker service)")
        parser.add_argument("--no-worker", action="store_true", help="run only the web server (compose's web service)")

    def handle(self, *, bind: str, workers: int, no_web: bool, no_worker: bool, **options) -> None:
        host, sep, port = bind.rpartition(":")
        if not sep or not port.isdigit():
            raise CommandError(f"--bind must be HOST:PORT, got {bind!r}")
        if no_web:
            # compose runs web and worker side by side: web migrates, the worker waits.
            self._wait_for_migrations()
        else:
            call_command("migrate", interactive=False, verbosity=0)
            self._ensure_admin()

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
                    sys.executable, MANAGE, "worker", "--no-reload", "--no-startup-delay", "--interval", "0.1",
                ]  # fmt: skip
            commands["sync"] = [sys.executable, MANAGE, "sync_projects", "--watch"]
            # Scheduled backups and retention: django-tasks has no cron, so a pass every minute.
            commands["backups"] = [sys.executable, MANAGE, "backup_projects", "--watch"]
        self._supervise(commands, bind if not no_web else None)

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
        self.stdout.write(self.style.SUCCESS(f"Created the superuser 'admin' with password: {password}"))
        self.stdout.write("It is shown this once; change it in the admin or with `manage.py changepassword admin`.")

    def _supervise(self, commands: dict[str, list[str]], bind: str | None) -> None:
        stopping = False

        def stop(*_) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)

        def spawn(name: str) -> subprocess.Popen:
            # Each child leads its own process group: a terminal's Ctrl-C reaches
            # only `up`, which then stops every child once, in order, and can
            # kill a child's whole group (gunicorn's workers too) if it hangs.
            return subprocess.Popen(commands[name], start_new_session=True)

        children = {name: spawn(name) for name in commands}
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
            self.stdout.write("Berth stopped.")
        if failed:
            raise CommandError(failed)
