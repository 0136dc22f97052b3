import signal
import threading

from django.core.management.base import BaseCommand

from projects.services.sync import projects_sync, sync_watch


class Command(BaseCommand):
    help = "Update every project's observed health from the engine and report drift. Never removes anything."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--watch", action="store_true", help="keep going: follow engine events, full pass every 30 s")
        parser.add_argument("--interval", type=float, default=30.0, help="seconds between full passes with --watch")

    def handle(self, *, watch: bool, interval: float, **options) -> None:
        if watch:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            self.stdout.write(f"watching the engine; full pass every {interval:.0f} s")
            sync_watch(stop=stop, full_pass_s=interval, log=lambda line: self.stdout.write(line))
            return
        report = projects_sync()
        if report.engine_error:
            self.stderr.write(f"engine unreachable: {report.engine_error}")
            self.stderr.write("every project's health is now 'unknown'; nothing else changed")
            raise SystemExit(2)
        for drift in report.drift:
            self.stdout.write(f"drift: {drift.project_id}: {drift.problem} (fix: {drift.fix})")
        self.stdout.write(f"{report.checked} project(s) checked, {report.changed} changed, {len(report.drift)} drift")
