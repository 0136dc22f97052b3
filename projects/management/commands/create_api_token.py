from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from projects.services.errors import InvalidInput
from projects.services.accounts.tokens import api_token_create, token_lifetime_parse


class Command(BaseCommand):
    help = (
        "Create an API token for USERNAME and print it as the last line of the output, so scripts can capture it "
        "with `| tail -n 1`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="a label to tell tokens apart")
        parser.add_argument("--expires", metavar="DURATION", help="expire after this long: 12h, 30d, 2w (default: never)")
        parser.add_argument("--read-only", action="store_true", help="the token may only read (GET); a write gets 403 read_only_token")

    def handle(self, *, username: str, name: str, expires: str | None, read_only: bool, **options: Any) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}; create one with `manage.py createsuperuser` or the admin")
        try:
            lifetime = token_lifetime_parse(expires) if expires is not None else None
        except InvalidInput as exc:
            raise CommandError(f"--{exc}") from None
        token, raw = api_token_create(user=user, name=name, lifetime=lifetime, read_only=read_only)
        if token.expires_at is not None or token.read_only:
            # On stderr: stdout stays the token alone, as scripts expect.
            scope = "read-only" if token.read_only else "read-write"
            until = f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "never expires"
            self.stderr.write(f"{scope} token {token.prefix}… for {username}, {until}")
        self.stdout.write(raw)
