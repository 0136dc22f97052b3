"""`manage.py renew_certificates`: renew every database certificate that is due, and apply it.

Due: within 30 days of expiry, or issued for another BERTH_PUBLIC_HOST. A
running project gets a `start` (which copies the new files in and reloads the
server without restarting it); any other one takes it on its next start.
Run it daily (cron, or a systemd timer); every start also renews what is due.
"""

from typing import Any

from django.core.management.base import BaseCommand

from projects.models import Project
from projects.services.settings.certificates import certificate_is_due
from projects.services.errors import ServiceError
from projects.services.lifecycle.requests import project_start


class Command(BaseCommand):
    help = "Renew due database certificates (expiring, or for an old BERTH_PUBLIC_HOST); running projects get a start to apply them."

    def handle(self, **options: Any) -> None:
        queued = due = 0
        for project in Project.objects.exclude(status=Project.Status.PURGED).exclude(tls_cert_pem="").iterator():
            if not certificate_is_due(project):
                continue
            due += 1
            if project.status != Project.Status.RUNNING:
                self.stdout.write(f"{project.public_id}: due; renewed on its next start ({project.status})")
                continue
            try:
                operation = project_start(project=project)
            except ServiceError as exc:
                self.stderr.write(f"{project.public_id}: not renewed now: {exc}")
                continue
            queued += 1
            self.stdout.write(f"{project.public_id}: start queued as operation {operation.public_id} to renew its certificate")
        self.stdout.write(f"{due} certificate(s) due, {queued} start(s) queued")
