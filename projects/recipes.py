"""The images Berth has recipes for (images/ in the repository): names only, no settings, no engine.

Pure data, so both the stack's contract (projects/stack/images.py) and the
engine adapters (a missing image of Berth's own is built, never pulled) read it.
"""

from dataclasses import dataclass

OWN_REPOSITORY = "berth"
# The Postgres majors a Debian release ships, i.e. those images/postgres can build.
DEBIAN_POSTGRES = {"15": "bookworm", "17": "trixie"}


@dataclass(frozen=True)
class Recipe:
    kind: str  # "postgres" | "postgraphile": the directory under images/
    version: str


def own_recipe(image: str) -> Recipe | None:
    """The recipe that builds `image`, if it is one of Berth's own names."""
    repository, _, tag = image.partition(":")
    if repository == f"{OWN_REPOSITORY}/postgres" and tag in DEBIAN_POSTGRES:
        return Recipe("postgres", tag)
    if repository == f"{OWN_REPOSITORY}/postgraphile" and tag == "4":
        return Recipe("postgraphile", "4")
    return None


def own_images() -> tuple[str, ...]:
    """Every image Berth can build here."""
    return (*(f"{OWN_REPOSITORY}/postgres:{v}" for v in DEBIAN_POSTGRES), f"{OWN_REPOSITORY}/postgraphile:4")
