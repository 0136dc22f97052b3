"""Which image runs each PostgreSQL version and API flavour on this installation.

Each offering (a Postgres version, an API flavour) has the image the settings
name and, when Berth has a recipe for it (images/ in the repository), Berth's
own equivalent (`berth/postgres:17`, `berth/postgraphile:4`); a Postgres major also
has Berth's variants (`berth/postgres:17-postgis`), supersets that run it when they
are on the engine, first of all, since nothing builds them but a request. `manage.py up`
checks them against the engine (present, pulled, or built) and records what it
found in `BERTH_DATA_DIR/images.json`: the offer. Everyone else reads the
record — the create form, the API's validation, the defaults, the stack spec —
with one stat() per call and no engine call, so the offer is cheap and holds
during an engine outage. Without a record (no `up` ran: unit tests, a bare
runserver) everything the settings name is offered, as configured.
"""

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from projects.recipes import DEBIAN_POSTGRES, OWN_REPOSITORY, POSTGRES_VARIANTS, postgres_variant_image

API_LABELS = {"postgrest": "PostgREST", "postgraphile": "PostGraphile"}


@dataclass(frozen=True)
class Need:
    """One offering and the images that can serve it, best first."""

    key: str  # "postgres:17", "api:postgraphile"
    label: str  # "PostgreSQL 17", "PostGraphile"
    configured: str  # the image the settings name
    own: str | None  # Berth's own build that can stand in, if there is a recipe
    variants: tuple[str, ...] = ()  # Berth's supersets of `own`, preferred when present

    @property
    def candidates(self) -> tuple[str, ...]:
        plain = (self.configured,) if self.own in (None, self.configured) else (self.configured, self.own)
        return (*self.variants, *plain)


def needs() -> tuple[Need, ...]:
    """Every offering the settings ask for, in the order `up` checks them."""
    found = []
    for version in sorted(settings.BERTH_POSTGRES_IMAGES, key=int):
        own = f"{OWN_REPOSITORY}/postgres:{version}" if version in DEBIAN_POSTGRES else None
        variants = tuple(postgres_variant_image(version, v) for v in POSTGRES_VARIANTS) if own else ()
        found.append(Need(f"postgres:{version}", f"PostgreSQL {version}", settings.BERTH_POSTGRES_IMAGES[version], own, variants))
    # PostgREST has no recipe: no Debian package or npm module ships it.
    found.append(Need("api:postgrest", "PostgREST", settings.BERTH_POSTGREST_IMAGE, None))
    # Berth's PostGraphile command line is version 4's.
    found.append(Need("api:postgraphile", "PostGraphile", settings.BERTH_POSTGRAPHILE_IMAGE, f"{OWN_REPOSITORY}/postgraphile:4"))
    return tuple(found)


@dataclass(frozen=True)
class Offer:
    postgres: dict[str, str]  # version -> the image that runs it
    api: dict[str, str]  # flavour -> the image that runs it
    missing: dict[str, str]  # need key -> why it is not offered

    @property
    def default_postgres_version(self) -> str | None:
        wanted = settings.BERTH_DEFAULT_POSTGRES_VERSION
        if wanted in self.postgres:
            return wanted
        return max(self.postgres, key=int, default=None)

    @property
    def default_api(self) -> str | None:
        wanted = settings.BERTH_DEFAULT_API
        if wanted in self.api:
            return wanted
        return next(iter(sorted(self.api)), None)


def offer_from_settings() -> Offer:
    """Everything configured, as configured: the offer before (or without) any check."""
    return Offer(
        postgres=dict(settings.BERTH_POSTGRES_IMAGES),
        api={"postgrest": settings.BERTH_POSTGREST_IMAGE, "postgraphile": settings.BERTH_POSTGRAPHILE_IMAGE},
        missing={},
    )


def record_path() -> Path:
    return Path(settings.DATA_DIR) / "images.json"


_cache: tuple[tuple[object, ...], Offer] | None = None
_lock = threading.Lock()


def offer() -> Offer:
    """What this installation can run: the record `up` wrote, else the settings. One stat() when unchanged."""
    global _cache
    path = record_path()
    try:
        stat = path.stat()
    except FileNotFoundError:
        return offer_from_settings()
    # Keyed by the settings too: a record says nothing about images the settings no longer name.
    key = (str(path), stat.st_mtime_ns, stat.st_size, tuple(n.key + "=" + n.configured for n in needs()))
    cached = _cache
    if cached is not None and cached[0] == key:
        return cached[1]
    with _lock:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return offer_from_settings()  # half-written or unreadable: as if no check ran
        configured = {n.key: n for n in needs()}
        images = {k: v for k, v in (data.get("images") or {}).items() if k in configured and v in configured[k].candidates}
        missing = {k: str(v) for k, v in (data.get("missing") or {}).items() if k in configured}
        # An offering the record does not mention (a setting added since) is offered as configured.
        for k, need in configured.items():
            if k not in images and k not in missing:
                images[k] = need.configured
        result = Offer(
            postgres={k.partition(":")[2]: v for k, v in images.items() if k.startswith("postgres:")},
            api={k.partition(":")[2]: v for k, v in images.items() if k.startswith("api:")},
            missing=missing,
        )
        _cache = (key, result)
        return result


def offer_record(*, images: dict[str, str], missing: dict[str, str]) -> None:
    """Write the offer (need key -> image; need key -> why not), atomically: readers see the old or the new."""
    path = record_path()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"images": images, "missing": missing}, indent=1, sort_keys=True))
    os.replace(tmp, path)


def postgres_image(version: str) -> str:
    """The image to run `version` with: the offered one, else (not offered) the configured one, which then fails clearly."""
    return offer().postgres.get(str(version)) or settings.BERTH_POSTGRES_IMAGES[str(version)]


def api_image(flavour: str) -> str:
    configured = settings.BERTH_POSTGRAPHILE_IMAGE if flavour == "postgraphile" else settings.BERTH_POSTGREST_IMAGE
    return offer().api.get(flavour) or configured
