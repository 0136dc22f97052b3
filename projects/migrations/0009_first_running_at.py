"""Project.first_running_at and Operation.allow_empty_database.

The backfill marks every project that holds (or held) data: one that is or was
running, stopped or deleted, and a failed one that any operation ever brought
up. From then on a vanished data volume is refused, not silently made afresh.
"""

from django.db import migrations, models
from django.db.models import Min

# Statuses a project reaches only after its create succeeded.
RAN = ["running", "stopping", "stopped", "starting", "deleting", "deleted", "restoring", "purging", "purged"]
# Operations that succeed only on a database that exists.
UP_KINDS = ["create", "clone", "start", "restore_backup", "backup"]


def backfill(apps, schema_editor):
    Project = apps.get_model("projects", "Project")
    Operation = apps.get_model("projects", "Operation")
    for project in Project.objects.filter(first_running_at__isnull=True).exclude(status="provisioning").iterator():
        up = Operation.objects.filter(project_id=project.pk, kind__in=UP_KINDS, state="succeeded")
        first_up = up.aggregate(first=Min("finished_at"))["first"]
        if project.status in RAN or up.exists():
            Project.objects.filter(pk=project.pk).update(first_running_at=first_up or project.created_at)


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0008_tls"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="first_running_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="operation",
            name="allow_empty_database",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
