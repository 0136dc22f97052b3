from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from projects.services.pool.requests import pool_drain, pool_status


class Command(BaseCommand):
    help = "Show the warm pool (BERTH_WARM_POOL): per version and flavour, stacks wanted, ready and being made; --drain empties it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--drain",
            action="store_true",
            help="queue the removal of every pooled stack (the workers run it); with BERTH_WARM_POOL still set, "
            "the watcher refills the pool on its next pass",
        )

    def handle(self, *, drain: bool, **options: Any) -> None:
        if drain:
            drained = pool_drain()
            self.stdout.write(f"{len(drained)} pooled stack(s) queued for removal" + (f": {', '.join(drained)}" if drained else ""))
        pools = pool_status()
        if not pools:
            self.stdout.write("no warm pool (BERTH_WARM_POOL is empty) and no pooled stack")
            return
        self.stdout.write(f"{'postgres':<9}{'api':<14}{'target':>7}{'ready':>7}{'filling':>9}")
        for p in pools:
            self.stdout.write(f"{p.postgres_version:<9}{p.api:<14}{p.target:>7}{p.ready:>7}{p.filling:>9}")
