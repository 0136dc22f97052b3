"""`manage.py images`: the images Berth's settings need, where each comes from, and whether the engine has it.

`manage.py images build [NAME…]` builds Berth's own images (default: those
the settings can use and the engine lacks) from the recipes in images/, with
progress and the time each took. A present image is skipped unless its
recipe changed since it was built (its berth.recipe label), so a machine that
kept yesterday's build gets today's recipe; --force rebuilds anyway.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from projects.recipes import own_images, own_recipe
from projects.runtime import RuntimeFailure
from projects.services.fleet.images import (
    BuildImpossible,
    ImageRow,
    build_requirements,
    image_build,
    images_ensure,
    images_listing,
)
from projects.stack.images import offer, record_path


class Command(BaseCommand):
    help = "List the images the settings need (where each comes from, whether the engine has it); `build [NAME…]` builds Berth's own."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", nargs="?", choices=["list", "build"], default="list")
        parser.add_argument("names", nargs="*", metavar="NAME", help=f"images to build (any of {', '.join(own_images())})")
        parser.add_argument("--force", action="store_true", help="build even when the engine has the image")

    def handle(self, *, action: str, names: list[str], force: bool, **options: Any) -> None:
        try:
            rows = images_listing()
        except RuntimeFailure as exc:
            raise CommandError(str(exc)) from None
        if action == "list":
            if names:
                raise CommandError("`images` lists everything; name images only with `images build`")
            self._list(rows)
            return
        for name in names:
            if own_recipe(name) is None:
                raise CommandError(f"there is no recipe for {name}; Berth builds {', '.join(own_images())}")
        if not names:
            # What the settings can use that the engine lacks: a stand-in only where the configured image is missing too.
            by_need: dict[str, list[ImageRow]] = {}
            for row in rows:
                by_need.setdefault(row.need.key, []).append(row)
            # Variants (berth/postgres:17-postgis) only when named: no offering needs them.
            names = [
                r.image for group in by_need.values() if force or not any(r.present for r in group)
                for r in group if r.image == r.need.own
            ] + [r.image for r in rows if r.stale]  # fmt: skip
            if not names:
                self.stdout.write("Nothing to build: the engine has a current image for every offering (--force rebuilds).")
                return
        present = {r.image: r for r in rows if r.present}
        failed = []
        for name in dict.fromkeys(names):
            if name in present and not force:
                if not (stale := present[name].stale):
                    self.stdout.write(f"{name}: present (--force rebuilds it)")
                    continue
                self.stdout.write(f"{name}: present but {stale}: building it again")
            if lacking := build_requirements(name):
                failed.append(name)
                self.stderr.write(f"{name}: cannot be built here:\n  " + "\n  ".join(lacking))
                continue
            try:
                image_build(image=name, say=self.stdout.write)
            except (BuildImpossible, RuntimeFailure) as exc:
                failed.append(name)
                self.stderr.write(f"{name}: {exc}")
        if record_path().exists():
            # `up` recorded what it could run: what was just built is offered at once, no restart needed.
            current = images_ensure(say=self.stdout.write, fetch=False)
            self.stdout.write(f"Offered now: PostgreSQL {', '.join(sorted(current.postgres, key=int)) or 'none'}; APIs {', '.join(sorted(current.api)) or 'none'}.")
        if failed:
            raise CommandError(f"not built: {', '.join(failed)}")

    def _list(self, rows: list[ImageRow]) -> None:
        self.stdout.write(f"{'offering':<16} {'image':<32} {'engine':<8} comes from")
        for row in rows:
            state = "stale" if row.stale else "present" if row.present else "missing"
            self.stdout.write(f"{row.need.label:<16} {row.image:<32} {state:<8} {row.source}")
        current = offer()
        if current.missing:
            self.stdout.write("\nNot offered when `up` last checked:")
            for key, why in current.missing.items():
                self.stdout.write(f"  {key}: {why}")
        lacking = {r.image for r in rows if not r.present and r.image == r.need.own}
        if lacking:
            self.stdout.write(f"\n`manage.py images build` builds {', '.join(sorted(lacking))}.")
