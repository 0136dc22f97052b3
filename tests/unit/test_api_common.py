"""projects/api_common.py: the /v1 body and query parsers, pinned by property and by the inputs that once answered 500.

Every input either parses to something the database can store or is refused
with InvalidInput naming the part at fault: never another exception, never
HTML, and nothing changes.
"""

import json

import pytest
from django.test import RequestFactory
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from projects.api.common import BODY_DEPTH_MAX, OFFSET_MAX, WAIT_MAX_S, body_parse, query_int, wait_seconds
from projects.models import Project
from projects.services.errors import InvalidInput
from tests.conftest import bearer

FAST = hypothesis_settings(max_examples=300, deadline=None)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _storable(value) -> bool:
    """No NUL and valid UTF-8 in any string, keys included."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


def _query(**params) -> object:
    return RequestFactory().get("/v1/projects", params)


# --- properties -----------------------------------------------------------------


@FAST
@given(st.binary(max_size=200))
def test_any_bytes_parse_to_an_object_or_are_refused_as_the_body(raw):
    try:
        body = body_parse(raw)
    except InvalidInput as exc:
        assert exc.field == "body" or exc.field in str(exc)
    else:
        assert isinstance(body, dict)


@FAST
@given(JSON_VALUES)
def test_any_json_parses_to_what_the_database_can_store_or_is_refused(value):
    # ensure_ascii escapes lone surrogates as \udXXX, the way an attacker sends them.
    try:
        body = body_parse(json.dumps(value).encode())
    except InvalidInput:
        assert not (isinstance(value, dict) and _storable(value))
    else:
        assert body == value and _storable(body)


@FAST
@given(st.text())
def test_a_query_number_is_ascii_digits_in_range_or_refused(raw):
    request = _query(offset=raw)
    try:
        value = query_int(request, "offset", default=0, low=0, high=OFFSET_MAX)
    except InvalidInput as exc:
        assert exc.field == "offset"
        assert not (raw.isascii() and raw.isdigit() and int(raw) <= OFFSET_MAX)
    else:
        assert raw.isascii() and raw.isdigit() and value == int(raw) and 0 <= value <= OFFSET_MAX


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=st.text(max_size=12), offset=st.text(max_size=12), wait=st.text(max_size=6))
def test_the_project_list_answers_json_whatever_the_query(client, user, limit, offset, wait):
    response = client.get("/v1/projects", {"limit": limit, "offset": offset, "wait": wait}, **bearer(user))
    assert response.status_code in (200, 400) and response["Content-Type"] == "application/json"


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=JSON_VALUES)
def test_a_schedule_put_answers_json_whatever_the_body(client, user, body):
    project = Project.objects.filter(owner=user).first() or Project.objects.create(owner=user, name="p")
    raw = json.dumps(body)
    response = client.put(f"/v1/projects/{project.public_id}/backup-schedule", data=raw, content_type="application/json", **bearer(user))
    assert response.status_code in (200, 400) and response["Content-Type"] == "application/json"


# --- the instances found from outside (issue 15, item 8) ---------------------------


@pytest.mark.parametrize("raw", ["²", "１", "٣", "1²", "۱۲", "9" * 5000, " 1", "1_0", "+1", "-0"])
def test_only_ascii_digits_are_a_number(raw):
    with pytest.raises(InvalidInput, match="offset"):
        query_int(_query(offset=raw), "offset", default=0, low=0, high=OFFSET_MAX)


def test_leading_zeros_are_still_the_number():
    assert query_int(_query(offset="0" * 5000 + "7"), "offset", default=0, low=0, high=OFFSET_MAX) == 7


@pytest.mark.parametrize("raw", ["²", "１２", "٣"])
def test_wait_takes_only_ascii_digits(raw):
    with pytest.raises(InvalidInput, match=f"wait: must be a whole number of seconds from 0 to {WAIT_MAX_S}"):
        wait_seconds(_query(wait=raw))


@pytest.mark.parametrize(
    "raw, field",
    [
        ('{"name": "\\ud800"}', "name"),
        ('{"\\udfff": 1}', "body"),
        ('{"name": "ok", "tags": ["\\ud83d"]}', "tags"),
        ('{"name": "a\\u0000b"}', "name"),
    ],
)
def test_strings_the_database_cannot_store_are_refused_naming_the_field(raw, field):
    with pytest.raises(InvalidInput) as refused:
        body_parse(raw.encode())
    assert refused.value.field == field


@pytest.mark.parametrize("depth", [BODY_DEPTH_MAX + 1, 1_000, 100_000])
def test_a_deeply_nested_body_is_refused_without_recursing(depth):
    raw = '{"a": ' + "[" * depth + "]" * depth + "}"
    with pytest.raises(InvalidInput, match=f"body: is nested deeper than {BODY_DEPTH_MAX} levels"):
        body_parse(raw.encode())


def test_nesting_up_to_the_limit_parses():
    depth = BODY_DEPTH_MAX - 1
    assert body_parse(('{"a": ' + "[" * depth + "]" * depth + "}").encode()) == {"a": json.loads("[" * depth + "]" * depth)}
