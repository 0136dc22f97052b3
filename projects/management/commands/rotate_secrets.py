"""`manage.py rotate_secrets`: re-encrypt every stored secret with the newest BERTH_SECRETS_KEY.

Rotation (RELIABILITY.md, "Secrets"):
1. `manage.py rotate_secrets --generate-key` prints a new Fernet key.
2. Put it first in BERTH_SECRETS_KEY, keeping the old one after it
   (`NEW,OLD`), and restart Berth: it decrypts with either, encrypts with NEW.
3. `manage.py rotate_secrets` re-encrypts every row with NEW.
4. Drop OLD from BERTH_SECRETS_KEY and restart.

An install without BERTH_SECRETS_KEY uses a key derived from SECRET_KEY;
`--print-derived-key` prints it, so step 2 can name it as OLD.

This changes the key that protects the secrets at rest, not the secrets: each
project's database password and JWT secret stay what they are.
"""

import argparse
from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser, DjangoHelpFormatter
from django.db import transaction

from projects.crypto import derived_key, first_key, secret_rotate
from projects.models import Project

ENCRYPTED = ("db_password_encrypted", "jwt_secret_encrypted", "admin_password_encrypted", "authenticator_password_encrypted",
             "monitor_password_encrypted")
BATCH = 500
# --help ends with the steps: this module's docstring after its first line.
STEPS = __doc__.partition("\n\n")[2]


class StepsHelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's order of options, with the steps' numbered lines kept as written."""


class Command(BaseCommand):
    help = "Re-encrypt every project's stored secrets with the first key of\nBERTH_SECRETS_KEY (the steps are below)."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        return super().create_parser(prog_name, subcommand, formatter_class=StepsHelpFormatter, epilog=STEPS, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--generate-key", action="store_true", help="print a new Fernet key and change nothing")
        parser.add_argument(
            "--print-derived-key",
            action="store_true",
            help="print the key derived from SECRET_KEY (what an install without BERTH_SECRETS_KEY uses) and change nothing",
        )

    def handle(self, *, generate_key: bool, print_derived_key: bool, **options: Any) -> None:
        if generate_key:
            self.stdout.write(Fernet.generate_key().decode())
            return
        if print_derived_key:
            self.stdout.write(derived_key(settings.SECRET_KEY))
            return
        if not settings.BERTH_SECRETS_KEYS:
            self.stderr.write(
                "BERTH_SECRETS_KEY is not set: secrets are encrypted with a key derived from SECRET_KEY. "
                "Rotating re-encrypts them with that same key."
            )
        first = Fernet(first_key().encode())
        rotated = checked = 0
        ids = list(Project.objects.order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), BATCH):
            # One transaction per batch, rows locked: a project created or
            # re-keyed meanwhile is never half-written.
            with transaction.atomic():
                batch = list(Project.objects.select_for_update().filter(pk__in=ids[start : start + BATCH]).only("pk", *ENCRYPTED))
                changed = []
                for project in batch:
                    checked += 1
                    before = tuple(getattr(project, f) for f in ENCRYPTED)
                    try:
                        for name in ENCRYPTED:
                            if getattr(project, name):  # empty: a project of the old kind has no admin password
                                setattr(project, name, secret_rotate(getattr(project, name)))
                    except Exception:
                        raise CommandError(
                            f"project {project.pk}: a secret cannot be decrypted with any key in BERTH_SECRETS_KEY; "
                            "add the key it was encrypted with (after the new one) and run this again. Nothing in this batch was changed."
                        ) from None
                    # Proof before the write: the newest key alone opens the new tokens.
                    for name in ENCRYPTED:
                        if getattr(project, name):
                            first.decrypt(getattr(project, name).encode())
                    if tuple(getattr(project, f) for f in ENCRYPTED) != before:
                        changed.append(project)
                Project.objects.bulk_update(changed, list(ENCRYPTED))
                rotated += len(changed)
        self.stdout.write(f"{checked} project(s) checked, {rotated} re-encrypted with the first key of BERTH_SECRETS_KEY")
