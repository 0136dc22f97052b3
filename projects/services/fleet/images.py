"""Images: which ones the settings need, where each comes from, building Berth's own, and the check `up` runs.

Berth's own images (`berth/postgres:15`, `berth/postgres:17`, their
`-postgis` variants, `berth/postgraphile:4`) are built from the recipes in images/: a root
filesystem from Debian's packages (and npm's, for PostGraphile) made by
images/build-rootfs, then a FROM-scratch build on the engine through the
runtime seam. `up` calls `images_ensure`, which records the offer that the rest
of Berth reads (projects/stack/images.py). Each build is labelled with its
recipe's digest (recipes.RECIPE_LABEL), so a present image made from an older
recipe is known stale and `images build` makes it again.
"""

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from projects.recipes import RECIPE_LABEL, Recipe, own_images, own_recipe
from projects.runtime import ImageUnavailable, RuntimeFailure, get_runtime
from projects.stack.images import Need, Offer, needs, offer, offer_record

RECIPES = Path(settings.BASE_DIR) / "images"
Say = Callable[[str], None]


class BuildImpossible(Exception):
    """This host cannot build the image; str() says what to install or how to run."""


@dataclass(frozen=True)
class ImageRow:
    """One line of `manage.py images`."""

    need: Need
    image: str
    present: bool
    source: str  # where it comes from when missing: "registry", "build: images/postgres", …
    stale: str | None = None  # one of Berth's own, present but made from an older recipe: why (image_staleness)


def images_listing() -> list[ImageRow]:
    """Every image the settings need (and Berth's stand-ins), whether the engine has it and where it comes from."""
    rows = [(need, image) for need in needs() for image in need.candidates]
    # One call: the labels of what is present say which of Berth's own an older recipe made.
    labels = get_runtime().images_labels({image for _, image in rows})
    listed = []
    for need, image in rows:
        recipe = own_recipe(image)
        if recipe is not None:
            source = f"built here from images/{recipe.kind}"
        elif settings.BERTH_PULL_IMAGES:
            source = "pulled from its registry"
        else:
            source = "pulled from its registry (pulling is off: BERTH_PULL_IMAGES=0)"
        listed.append(
            ImageRow(need=need, image=image, present=image in labels, source=source, stale=image_staleness(image, labels.get(image)))
        )
    return listed


def build_requirements(image: str) -> list[str]:
    """What this host lacks to build `image`: sentences naming what to install; empty when it can."""
    recipe = own_recipe(image)
    if recipe is None:
        return [f"there is no recipe for {image}; Berth builds only {', '.join(own_images())}"]
    lacking = []
    if os.geteuid() != 0:
        lacking.append("building needs root (debootstrap, chroot and mount): run `sudo uv run manage.py images build`")
    for tool, package in (("debootstrap", "debootstrap"), ("chroot", "coreutils"), ("tar", "tar"), ("mount", "mount")):
        if shutil.which(tool) is None:
            lacking.append(f"{tool} is missing: apt-get install {package}")
    if recipe.kind == "postgraphile" and shutil.which("npm") is None:
        lacking.append("npm is missing (PostGraphile comes from npm): apt-get install npm")
    return lacking


def recipe_digest(recipe: Recipe) -> str:
    """A digest of everything that makes `recipe`'s image: build-rootfs (one script for every kind, so hashed whole),
    the kind's directory, and the tag (the variant picks packages inside the script)."""
    digest = hashlib.sha256(f"{recipe.kind}:{recipe.tag}\n".encode())
    files = [RECIPES / "build-rootfs", *sorted(p for p in (RECIPES / recipe.kind).rglob("*") if p.is_file())]
    for path in files:
        digest.update(f"{path.relative_to(RECIPES)}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:32]


def image_staleness(image: str, labels: dict[str, str] | None) -> str | None:
    """Why the engine's copy of one of Berth's own images must be built again, or None when it is current.

    `labels` are the present image's (None: the engine lacks it, which is no staleness).
    An image made before images carried the label counts as stale: it predates the recipe.
    """
    recipe = own_recipe(image)
    if recipe is None or labels is None:
        return None
    built_from = labels.get(RECIPE_LABEL)
    if built_from == recipe_digest(recipe):
        return None
    return f"built from {'another' if built_from else 'an older, unlabelled'} recipe than images/ holds now"


def image_build(*, image: str, say: Say) -> float:
    """Build one of Berth's own images; returns the seconds it took. BuildImpossible, RuntimeFailure."""
    if lacking := build_requirements(image):
        raise BuildImpossible(f"cannot build {image} here: " + "; ".join(lacking))
    recipe = own_recipe(image)
    assert recipe is not None
    started = time.monotonic()
    work = Path(os.environ.get("BERTH_IMAGES_WORK") or "/var/tmp/berth-images")
    context = work / f"ctx-{recipe.kind}-{recipe.tag}"
    say(f"{image}: building from images/{recipe.kind} (Debian packages{', npm' if recipe.kind == 'postgraphile' else ''})")
    process = subprocess.Popen(
        [str(RECIPES / "build-rootfs"), recipe.kind, recipe.tag, str(context)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "BERTH_IMAGES_WORK": str(work)},
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    for line in process.stdout:
        say(f"{image}: {line.rstrip()} ({time.monotonic() - started:.0f} s)")
    failure = process.stderr.read().strip()
    if process.wait() != 0:
        raise RuntimeFailure(f"building {image} failed making its root filesystem:\n{failure[-3000:]}")
    try:
        say(f"{image}: building on the engine")
        buildargs = {"BERTH_RECIPE": recipe_digest(recipe), **({"PG_MAJOR": recipe.version} if recipe.kind == "postgres" else {})}
        get_runtime().image_build(context, image, buildargs=buildargs, progress=say)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    took = time.monotonic() - started
    say(f"{image}: built in {took:.0f} s")
    return took


# --- what `up` runs --------------------------------------------------------------------


def images_ensure(*, say: Say, mode: str | None = None, fetch: bool = True) -> Offer:
    """Make every offering's image available if it can be had, record the offer, and return it.

    Present → used. Pullable (BERTH_PULL_IMAGES) → pulled. Neither → with
    BERTH_IMAGES=auto Berth's own equivalent is built; with `pull` it is only
    said. What still cannot be had is not offered. Never raises over an image:
    `up` serves whatever can run. `fetch=False` only looks (after a build by
    hand: the offer grows without a restart).
    """
    mode = mode or settings.BERTH_IMAGES
    runtime = get_runtime()
    all_needs = needs()
    present = runtime.images_labels({image for need in all_needs for image in need.candidates})
    chosen: dict[str, str] = {}
    missing: dict[str, str] = {}
    for need in all_needs:
        have = next((image for image in need.candidates if image in present), None)
        if have is not None:
            chosen[need.key] = have
            # Still run (it works, it only lacks what the recipe added since): rebuilding is the operator's call.
            if stale := image_staleness(have, present[have]):
                say(f"{need.label}: {have} is {stale}: `manage.py images build {have}` makes it again")
            continue
        reasons = [f"{need.configured} is not on the engine"]
        if not fetch:
            missing[need.key] = reasons[0] + (f" nor {need.own}" if need.own else "")
            continue
        # Berth's own names are never pulled: a registry's image of that name is someone else's.
        if settings.BERTH_PULL_IMAGES and own_recipe(need.configured) is None:
            say(f"{need.label}: pulling {need.configured}")
            started = time.monotonic()
            try:
                runtime.image_pull(need.configured, progress=say)
            except ImageUnavailable as exc:
                reasons.append(f"it could not be pulled ({_first_line(exc)})")
            else:
                say(f"{need.label}: pulled {need.configured} in {time.monotonic() - started:.0f} s")
                chosen[need.key] = need.configured
                continue
        if need.own is None:
            reasons.append("Berth has no recipe to build it")
        elif mode != "auto":
            reasons.append(f"BERTH_IMAGES={mode}: `manage.py images build {need.own}` builds {need.own}")
        else:
            say(f"{need.label}: building {need.own} here instead (a few minutes, once)")
            try:
                image_build(image=need.own, say=say)
            except (BuildImpossible, RuntimeFailure) as exc:
                reasons.append(str(exc))
            else:
                chosen[need.key] = need.own
                continue
        missing[need.key] = "; ".join(reasons)
        say(f"warning: {need.label} is not offered: {missing[need.key]}")
    offer_record(images=chosen, missing=missing)
    return offer()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
