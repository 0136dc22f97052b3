"""Berth's own bootstrap superuser and the api's authenticator role.

Projects made before keep `db_user` as their bootstrap superuser (Postgres
cannot demote it): their admin password stays empty, which marks them as the
old kind. Every project gets an authenticator password now, so its next start
creates the role and points the api at it.
"""

import secrets

from django.db import migrations, models


def authenticator_passwords(apps, schema_editor):
    from projects.crypto import secret_encrypt

    Project = apps.get_model("projects", "Project")
    for project in Project.objects.filter(authenticator_password_encrypted="").only("pk").iterator():
        Project.objects.filter(pk=project.pk).update(authenticator_password_encrypted=secret_encrypt(secrets.token_urlsafe(24)))


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0006_tenancy"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="admin_password_encrypted",
            field=models.TextField(blank=True, default="", editable=False),
        ),
        migrations.AddField(
            model_name="project",
            name="authenticator_password_encrypted",
            field=models.TextField(blank=True, default="", editable=False),
        ),
        migrations.RunPython(authenticator_passwords, migrations.RunPython.noop),
    ]
