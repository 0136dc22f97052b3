"""`manage.py backup_projects`: the periodic backup pass, for the worker (`--watch`) or for cron.

django-tasks has no scheduler, so schedules are kept by polling: each pass
queues the daily backups that are due (as ordinary operations, run by the
workers), removes backups past their retention, and cleans up after workers
that died mid-backup. `manage.py up` runs it with --watch; without `up`, run
it from cron (hourly is enough: a due backup is caught up on the next pass).
"""

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from projects.services.backups.schedule import BackupsReport, backups_pass


class Command(BaseCommand):
    help = "Queue due scheduled backups, apply retention, clean up after dead workers. Cron it hourly, or use --watch."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--watch", action="store_true", help="keep going: one pass every --interval seconds")
        parser.add_argument("--interval", type=float, default=60.0, help="seconds between passes with --watch (default 60)")

    def handle(self, *, watch: bool, interval: float, **options: Any) -> None:
        if not watch:
            report = backups_pass()
            self._print(report, quiet=False)
            if report.engine_error:
                self.stderr.write(f"engine unreachable: {report.engine_error} (leftover containers not checked)")
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"backup pass every {interval:.0f} s")
        while not stop.is_set():
            close_old_connections()
            try:
                self._print(backups_pass(), quiet=True)
            except Exception as exc:  # a database hiccup must not end the watch; the next pass retries
                self.stderr.write(f"backup pass failed: {type(exc).__name__}: {exc}")
            stop.wait(interval)

    def _print(self, report: BackupsReport, *, quiet: bool) -> None:
        for line in report.queued:
            self.stdout.write(f"queued scheduled backup: {line}")
        for line in report.skipped:
            self.stdout.write(f"due but not queued yet: {line}")
        for line in report.removed:
            self.stdout.write(f"removed: {line}")
        for line in report.settled:
            self.stdout.write(f"failed (its worker died): {line}")
        for line in report.cleaned:
            self.stdout.write(f"cleaned up: {line}")
        if not quiet:
            self.stdout.write(
                f"{len(report.queued)} queued, {len(report.removed)} removed, {len(report.settled) + len(report.cleaned)} leftovers cleaned"
            )
