"""Project names: what Berth stores as a name, and that an owner's names tell their projects apart.

A name is a label a person reads on the dashboard and types to confirm a
delete, so it must look like what it is: no terminal escapes (ESC, BEL), no
line breaks, no Bidi_Control characters that reorder the text around it
(U+202E shows "gpj.exe" as "exe.jpg"), and no two live projects of one owner
with the same one.
"""

import unicodedata

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User

from projects.models import NAME_MAX, Project

from .errors import InvalidInput, NameTaken

# Unicode's Bidi_Control property (UAX #9): ALM, LRM, RLM, the embeddings and
# overrides LRE..RLO, and the isolates LRI..PDI.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Controls (C0, DEL, C1), lone surrogates, and the line and paragraph separators.
REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def project_name_clean(*, name: str) -> str:
    """The name as stored (trimmed); raises InvalidInput naming `name` for one Berth will not store."""
    name = name.strip()
    if not name:
        raise InvalidInput("name", "must not be empty (leave it out for a generated name)")
    if len(name) > NAME_MAX:
        raise InvalidInput("name", f"must be at most {NAME_MAX} characters")
    for char in name:
        if char in BIDI_CONTROLS or unicodedata.category(char) in REFUSED_CATEGORIES:
            raise InvalidInput("name", f"must not contain control or bidirectional-formatting characters (found U+{ord(char):04X})")
    return name


def project_name_check_free(*, owner: User, name: str) -> None:
    """Raise NameTaken when one of `owner`'s projects that is not purged has this name.

    Call it inside the transaction that inserts the project: it locks the
    owner's row, so two creates with one name cannot both pass the check (on
    SQLite the IMMEDIATE transaction already serialises them).
    """
    get_user_model().objects.select_for_update().filter(pk=owner.pk).values_list("pk").first()
    if Project.objects.filter(owner=owner, name=name).exclude(status=Project.Status.PURGED).exists():
        raise NameTaken("name", f"you already have a project called {name!r}; choose another name")
