import pytest
from django.core.exceptions import ImproperlyConfigured

from controlplane.settings import berth_settings, database_from_url


@pytest.mark.parametrize(
    "variable, value",
    [
        ("BERTH_DB_PORTS", "lots"),
        ("BERTH_DB_PORTS", "7000-6000"),
        ("BERTH_API_PORTS", "6500-6600"),  # overlaps the db range
        ("BERTH_POSTGRES_IMAGES", "postgres:17"),
        ("BERTH_DEFAULT_POSTGRES_VERSION", "16"),
        ("BERTH_DEFAULT_API", "graphql"),
        ("BERTH_DELETE_RETENTION_DAYS", "a week"),
        ("BERTH_DELETE_RETENTION_DAYS", "-1"),
        ("BERTH_PULL_IMAGES", "maybe"),
        ("BERTH_WORKERS", "0"),
        ("BERTH_EXTRA_LABELS", "no-equals-sign"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(variable, value):
    with pytest.raises(ImproperlyConfigured, match=variable):
        berth_settings({variable: value})


def test_defaults_are_the_documented_ones():
    s = berth_settings({})
    assert s["BERTH_POSTGRES_IMAGES"] == {"15": "postgres:15", "17": "postgres:17"}
    assert s["BERTH_DEFAULT_POSTGRES_VERSION"] == "17" and s["BERTH_DEFAULT_API"] == "postgrest"
    assert s["BERTH_POSTGRAPHILE_IMAGE"] == "graphile/postgraphile:4"
    assert s["BERTH_POSTGREST_IMAGE"].startswith("postgrest/postgrest:v")  # pinned, never :latest
    assert (s["BERTH_PUBLISH_HOST"], s["BERTH_PUBLIC_HOST"]) == ("127.0.0.1", "localhost")
    assert (s["BERTH_DB_PORTS"], s["BERTH_API_PORTS"]) == ((6200, 6999), (7200, 7999))
    assert s["BERTH_DELETE_RETENTION_DAYS"] == 7


def test_database_url_switches_to_postgresql_with_decoded_credentials():
    db = database_from_url("postgres://berth:p%40ss@db.internal:5433/berth")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == ("berth", "p@ss", "db.internal", "5433", "berth")


def test_sqlite_runs_in_wal_mode_with_immediate_transactions():
    db = database_from_url("sqlite:////tmp/berth.sqlite3")
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE" and "journal_mode=WAL" in db["OPTIONS"]["init_command"]


def test_an_unknown_database_scheme_is_refused():
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        database_from_url("mysql://x@y/z")
