import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from projects.services.fleet.drift import drift_report
from projects.services.fleet.watcher import projects_sync, sync_watch


class Command(BaseCommand):
    help = "Update every project's observed health from the engine and report drift. Never removes anything."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--watch", action="store_true", help="keep going: follow engine events, full pass every 30 s; "
                            "sample every running project's metrics every BERTH_METRICS_SECONDS in a thread beside it")
        parser.add_argument("--interval", type=float, default=30.0, help="seconds between full passes with --watch")
        parser.add_argument(
            "--report",
            action="store_true",
            dest="drift_only",
            help="list drift only (orphan containers, networks, volumes; missing or stopped stacks; port mismatches) "
            "with the fix for each; changes nothing. Exit 0 when clean, 1 with drift, 2 when the engine is unreachable",
        )

    def handle(self, *, watch: bool, interval: float, drift_only: bool, **options: Any) -> None:
        if drift_only:
            self._report()
            return
        if watch:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            self.stdout.write(f"watching the engine; full pass every {interval:.0f} s")
            sync_watch(stop=stop, full_pass_s=interval, log=lambda line: self.stdout.write(line))
            return
        report = projects_sync()
        for operation_id in report.recovered:
            self.stdout.write(f"operation {operation_id}: its worker died; failed, its project can be retried")
        if report.engine_error:
            self.stderr.write(f"engine unreachable: {report.engine_error}")
            self.stderr.write("every project's health is now 'unknown'; nothing else changed")
            raise SystemExit(2)
        for drift in report.drift:
            self.stdout.write(f"drift: {drift.project_id}: {drift.problem} (fix: {drift.fix})")
        self.stdout.write(f"{report.checked} project(s) checked, {report.changed} changed, {len(report.drift)} drift")

    def _report(self) -> None:
        report = drift_report()
        if report.engine_error:
            self.stderr.write(f"engine unreachable: {report.engine_error}")
            raise SystemExit(2)
        for entry in report.entries:
            self.stdout.write(f"{entry.kind}: {entry.subject}: {entry.problem}\n    fix: {entry.fix}")
        self.stdout.write(
            f"{report.projects_checked} project(s) and {report.objects_checked} engine object(s) checked, "
            f"{len(report.entries)} drift; nothing was changed"
        )
        if report.entries:
            raise SystemExit(1)
