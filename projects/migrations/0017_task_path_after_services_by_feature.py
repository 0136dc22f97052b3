"""The worker's task moved with the services' regrouping (issue 20): rows queued before it name the old path.

A row still waiting (READY) is pointed at the task's new home, so an upgrade
with operations queued loses none of them; the queue's recovery of a dead
worker's rows reads both paths (operations/queue.py, PREVIOUS_TASK_PATHS).
"""

from django.db import migrations

OLD = "projects.services.operations.run_operation"
NEW = "projects.services.operations.queue.run_operation"


def forward(apps, schema_editor):
    DBTaskResult = apps.get_model("django_tasks_database", "DBTaskResult")
    DBTaskResult.objects.filter(task_path=OLD, status="READY").update(task_path=NEW)


def backward(apps, schema_editor):
    DBTaskResult = apps.get_model("django_tasks_database", "DBTaskResult")
    DBTaskResult.objects.filter(task_path=NEW, status="READY").update(task_path=OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0016_second_factor_requirement"),
        ("django_tasks_database", "0021_conditional_partial_index_ordering"),
    ]

    operations = [migrations.RunPython(forward, backward)]
