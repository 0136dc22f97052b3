"""Project names (projects/services/names.py): what is stored, and one live name per owner."""

import threading

import pytest
from django.db import connection

from projects.models import Project
from projects.services.lifecycle import requests as lifecycle
from projects.services.errors import InvalidInput, NameTaken
from projects.services.names import project_name_clean


def test_a_name_is_trimmed_and_keeps_ordinary_unicode():
    assert project_name_clean(name="  Café 東京 – ünïcode 🙂 \n") == "Café 東京 – ünïcode 🙂"


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\u2028", "\u200f", "\u061c", "\u202b", "\u2068", "\ud800"])
def test_controls_separators_bidi_controls_and_lone_surrogates_are_refused(char):
    with pytest.raises(InvalidInput, match=f"U\\+{ord(char):04X}") as refused:
        project_name_clean(name=f"a{char}b")
    assert refused.value.field == "name" and refused.value.code == "invalid"


def test_a_refused_create_changes_nothing(user):
    lifecycle.project_create(owner=user, name="shop")
    before = list(Project.objects.values())
    for name in ("shop", "\x1bshop", ""):
        with pytest.raises(InvalidInput):
            lifecycle.project_create(owner=user, name=name)
    assert list(Project.objects.values()) == before


def test_names_that_are_already_duplicated_stay_as_they_are(user):
    # Made before names were unique: both stay, and neither frees the name.
    first = lifecycle.project_create(owner=user, name="twin").project
    Project.objects.create(owner=user, name="twin", postgres_version="17", api_flavour="postgrest")
    with pytest.raises(NameTaken):
        lifecycle.project_create(owner=user, name="twin")
    assert Project.objects.filter(name="twin").count() == 2 and Project.objects.get(pk=first.pk).status == "running"


@pytest.mark.django_db(transaction=True)
def test_two_creates_with_one_name_at_the_same_moment_make_one_project(django_user_model):
    owner = django_user_model.objects.create_user("racer")
    start, outcomes = threading.Barrier(2), []

    def create() -> None:
        start.wait()
        try:
            lifecycle.project_create(owner=owner, name="same")
            outcomes.append("created")
        except NameTaken:
            outcomes.append("taken")
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["created", "taken"]
    assert Project.objects.filter(owner=owner, name="same").count() == 1
