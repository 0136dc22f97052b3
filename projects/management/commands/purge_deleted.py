from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from projects.models import Project
from projects.services.errors import ServiceError
from projects.services.lifecycle.requests import project_purge


class Command(BaseCommand):
    help = "Queue a purge for every deleted project whose retention (purge_after) has run out."

    def handle(self, **options: Any) -> None:
        due = Project.objects.filter(status=Project.Status.DELETED, purge_after__lte=timezone.now())
        queued = 0
        for project in due:
            try:
                operation = project_purge(project=project, confirm=project.public_id)
            except ServiceError as exc:
                self.stderr.write(f"{project.public_id}: not purged: {exc}")
                continue
            queued += 1
            self.stdout.write(f"{project.public_id}: purge queued as operation {operation.public_id}")
        self.stdout.write(f"{queued} purge(s) queued")
