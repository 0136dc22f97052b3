from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from projects.services.tokens import api_token_create


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it (alone, so scripts can capture it)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="a label to tell tokens apart")

    def handle(self, *, username: str, name: str, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}; create one with `manage.py createsuperuser` or the admin")
        _, raw = api_token_create(user=user, name=name)
        self.stdout.write(raw)
