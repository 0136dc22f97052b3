"""The images Berth has recipes for (images/ in the repository): names only, no settings, no engine.

Pure data, so both the stack's contract (projects/stack/images.py) and the
engine adapters (a missing image of Berth's own is built, never pulled) read it.
"""

from dataclasses import dataclass

OWN_REPOSITORY = "berth"
# The Postgres majors a Debian release ships, i.e. those images/postgres can build.
DEBIAN_POSTGRES = {"15": "bookworm", "17": "trixie"}
# Supersets of a major's image, each a tag of its own (`berth/postgres:17-postgis`): PostGIS
# costs ~200 MB a major (BENCHMARKS.md), more than every project should carry, so it is built
# only on request and, once present, offered for its major (stack/images.py).
POSTGRES_VARIANTS = ("postgis",)
# The extensions only a variant has, by variant: what an upgrade's refusal names the variant for.
VARIANT_EXTENSIONS = {
    "postgis": frozenset({
        "postgis", "postgis_raster", "postgis_sfcgal", "postgis_topology", "postgis_tiger_geocoder",
        "address_standardizer", "address_standardizer_data_us",
    }),
}  # fmt: skip
# The label on Berth's built images holding their recipe's digest (services/fleet/images.py).
RECIPE_LABEL = "berth.recipe"


@dataclass(frozen=True)
class Recipe:
    kind: str  # "postgres" | "postgraphile": the directory under images/
    version: str  # the major
    variant: str = ""  # one of POSTGRES_VARIANTS, or "" for the plain image

    @property
    def tag(self) -> str:
        """The image's tag, and what images/build-rootfs takes as its version: "17", "17-postgis"."""
        return f"{self.version}-{self.variant}" if self.variant else self.version


def own_recipe(image: str) -> Recipe | None:
    """The recipe that builds `image`, if it is one of Berth's own names."""
    repository, _, tag = image.partition(":")
    if repository == f"{OWN_REPOSITORY}/postgres":
        major, _, variant = tag.partition("-")
        if major in DEBIAN_POSTGRES and (variant == "" or variant in POSTGRES_VARIANTS) and tag == Recipe("postgres", major, variant).tag:
            return Recipe("postgres", major, variant)
    if repository == f"{OWN_REPOSITORY}/postgraphile" and tag == "4":
        return Recipe("postgraphile", "4")
    return None


def postgres_variant_image(version: str, variant: str) -> str:
    return f"{OWN_REPOSITORY}/postgres:{Recipe('postgres', version, variant).tag}"


def own_images() -> tuple[str, ...]:
    """Every image Berth can build here."""
    return (
        *(f"{OWN_REPOSITORY}/postgres:{v}" for v in DEBIAN_POSTGRES),
        *(postgres_variant_image(v, variant) for variant in POSTGRES_VARIANTS for v in DEBIAN_POSTGRES),
        f"{OWN_REPOSITORY}/postgraphile:4",
    )


def variants_for(version: str, extensions: list[str]) -> list[str]:
    """Berth's variant images of PostgreSQL `version` that would have some of `extensions`."""
    if version not in DEBIAN_POSTGRES:
        return []
    return [postgres_variant_image(version, v) for v in POSTGRES_VARIANTS if VARIANT_EXTENSIONS[v] & set(extensions)]
