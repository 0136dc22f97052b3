"""The settings a project may change (projects/pgconf.py): the allowlist, each format and bound, memory limits."""

import pytest

from projects.pgconf import RELOAD_SETTINGS, RESTART_SETTINGS, SETTINGS, BadSetting, memory_clean, setting_clean


def test_only_postmaster_settings_need_a_restart():
    assert RESTART_SETTINGS == {"max_connections", "shared_buffers"}
    assert {"work_mem", "statement_timeout", "log_min_duration_statement", "timezone"} <= RELOAD_SETTINGS
    assert not RESTART_SETTINGS & RELOAD_SETTINGS and RESTART_SETTINGS | RELOAD_SETTINGS == set(SETTINGS)


@pytest.mark.parametrize(
    "name, value, stored",
    [
        ("max_connections", "100", "100"),
        ("max_connections", 100, "100"),
        ("shared_buffers", "64MB", "64MB"),
        ("shared_buffers", " 1 GB ", "1GB"),
        ("work_mem", "64kB", "64kB"),
        ("statement_timeout", "30s", "30s"),
        ("statement_timeout", "0", "0ms"),
        ("log_min_duration_statement", "-1", "-1ms"),
        ("log_min_duration_statement", "250ms", "250ms"),
        ("idle_in_transaction_session_timeout", "5min", "5min"),
        ("log_statement", "DDL", "ddl"),
        ("timezone", "Europe/Paris", "Europe/Paris"),
    ],
)
def test_a_good_value_is_stored_in_the_servers_format(name, value, stored):
    assert setting_clean(name, value) == stored


@pytest.mark.parametrize(
    "name, value, says",
    [
        ("fsync", "off", "not a setting a project may change"),
        ("archive_command", "sh -c 'curl evil'", "not a setting a project may change"),
        ("max_connections", "5", "from 10 to 1000"),
        ("max_connections", "100000", "from 10 to 1000"),
        ("max_connections", "ten", "whole number"),
        ("max_connections", True, "must be a string"),
        ("max_connections", ["1"], "must be a string"),
        ("shared_buffers", "64", "with its unit"),
        ("shared_buffers", "64mb", "with its unit"),  # Postgres's units are case-sensitive
        ("shared_buffers", "64kB", "from 128kB"),
        ("shared_buffers", "9GB", "to 8GB"),
        ("work_mem", "32kB", "from 64kB"),
        ("work_mem", "1.5MB", "with its unit"),
        ("statement_timeout", "2d", "to 1d"),
        ("statement_timeout", "-1", "from 0ms"),
        ("statement_timeout", "soon", "a duration"),
        ("log_min_duration_statement", "-2", "from -1ms"),
        ("log_statement", "verbose", "one of none, ddl, mod, all"),
        ("timezone", "UTC'; DROP TABLE x; --", "must be a name"),
    ],
)
def test_a_bad_value_is_refused_saying_why(name, value, says):
    with pytest.raises(BadSetting, match=says):
        setting_clean(name, value)


@pytest.mark.parametrize("field, value, stored", [("db_memory", "1G", "1g"), ("db_memory", "768m", "768m"), ("api_memory", "64m", "64m")])
def test_a_memory_limit_is_kept_in_the_engines_format(field, value, stored):
    assert memory_clean(field, value) == stored


@pytest.mark.parametrize(
    "field, value",
    [("db_memory", "32m"), ("db_memory", "65g"), ("db_memory", "512MB"), ("db_memory", "lots"), ("db_memory", 512), ("api_memory", "16m")],
)
def test_a_memory_limit_out_of_bounds_or_format_is_refused(field, value):
    with pytest.raises(BadSetting, match=field):
        memory_clean(field, value)
