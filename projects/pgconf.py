"""What a project may change after creation: its Postgres settings (an allowlist) and its memory limits.

Pure data and parsing, no engine: spec.py reads it to put each setting where
it takes effect, services/settings/requests.py to refuse a bad value before anything
changes. Berth checks the format and its own bounds here (the server's minimums
on 15 and 17, and limits a small host can live with); on a running project the
server itself judges the value too, before the change is kept.

Where a setting goes depends on its context (pg_settings.context):
- `postmaster` ones (max_connections, shared_buffers) are read only as the
  server starts: they ride on its command line, so a change alters the db
  container's `berth.config` digest and applies when the container is next
  recreated (a start, or the `restart` operation). Until then it is pending.
- the others are reloadable: the bootstrap writes them with ALTER SYSTEM
  (postgresql.auto.conf, in the data volume) and reloads, on every start and
  at once by the `reconfigure` operation. They are kept off the command line,
  which would override the file.
"""

import re
from dataclasses import dataclass

KB = 1
MB = 1024
GB = 1024 * 1024
MEMORY_UNITS = {"kB": KB, "MB": MB, "GB": GB, "TB": 1024 * GB}
# A time's unit → milliseconds (every time setting of the allowlist counts in ms).
TIME_UNITS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
DAY_MS = TIME_UNITS["d"]


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # "int" | "memory" (kB) | "time" (ms) | "enum" | "name"
    restart: bool  # postmaster context: read only when the server starts
    low: int = 0
    high: int = 0
    choices: tuple[str, ...] = ()
    help: str = ""


# The allowlist. Bounds: the server's own minimums (so a value Berth takes
# never stops a server from starting), and maxima sane for one project's server.
SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("max_connections", "int", True, 10, 1000, help="client connections the server accepts"),
        Setting("shared_buffers", "memory", True, 128 * KB, 8 * GB, help="the server's shared cache; at most half the db memory"),
        Setting("work_mem", "memory", False, 64 * KB, 2 * GB, help="memory per sort or hash, per query step"),
        Setting("maintenance_work_mem", "memory", False, 1 * MB, 4 * GB, help="memory for VACUUM, CREATE INDEX"),
        Setting("effective_cache_size", "memory", False, 8 * KB, 1024 * GB, help="the planner's guess of the cache available"),
        Setting("statement_timeout", "time", False, 0, DAY_MS, help="0: none"),
        Setting("lock_timeout", "time", False, 0, DAY_MS, help="0: none"),
        Setting("idle_in_transaction_session_timeout", "time", False, 0, DAY_MS, help="0: none"),
        Setting("log_min_duration_statement", "time", False, -1, DAY_MS, help="log statements slower than this; -1: none"),
        Setting("log_statement", "enum", False, choices=("none", "ddl", "mod", "all"), help="which statements are logged"),
        # Only the server knows its time zone names (its tzdata): Berth checks the shape.
        Setting("timezone", "name", False, help="the time zone sessions start in, e.g. UTC, Europe/Paris"),
    )
}
RESTART_SETTINGS = frozenset(name for name, s in SETTINGS.items() if s.restart)
RELOAD_SETTINGS = frozenset(name for name, s in SETTINGS.items() if not s.restart)

_INT = re.compile(r"[0-9]{1,10}")
_MEMORY = re.compile(r"([0-9]{1,10})\s*(kB|MB|GB|TB)")
_TIME = re.compile(r"(-?[0-9]{1,10})\s*(ms|s|min|h|d)?")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_/+-]{0,63}")


class BadSetting(ValueError):
    """str() says what is wrong with the value, for a person."""


def _amount(value: int, unit: str, s: Setting) -> str:
    return f"{value}{unit}" if s.kind != "int" else str(value)


def _shown(amount: int, s: Setting) -> str:
    if s.kind == "memory":
        for unit in ("GB", "MB"):
            if amount >= MEMORY_UNITS[unit] and amount % MEMORY_UNITS[unit] == 0:
                return f"{amount // MEMORY_UNITS[unit]}{unit}"
        return f"{amount}kB"
    if s.kind == "time":
        return "1d" if amount == DAY_MS else f"{amount}ms"
    return str(amount)


def setting_clean(name: str, value: object) -> str:
    """The value as Berth stores and passes it; BadSetting naming the fault (an unknown name, a bad format, a bound)."""
    s = SETTINGS.get(name)
    if s is None:
        raise BadSetting(f"{name!r} is not a setting a project may change; these are: {', '.join(sorted(SETTINGS))}")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadSetting(f"{name} must be a string such as {setting_example(s)!r}")
    text = str(value).strip()
    if s.kind == "enum":
        if text.lower() not in s.choices:
            raise BadSetting(f"{name} must be one of {', '.join(s.choices)}")
        return text.lower()
    if s.kind == "name":
        if not _NAME.fullmatch(text):
            raise BadSetting(f"{name} must be a name such as {setting_example(s)!r} (letters, digits, / _ + -)")
        return text
    if s.kind == "int":
        if not _INT.fullmatch(text):
            raise BadSetting(f"{name} must be a whole number, e.g. {setting_example(s)!r}")
        amount, unit = int(text), ""
    elif s.kind == "memory":
        match = _MEMORY.fullmatch(text)
        if not match:
            raise BadSetting(f"{name} must be an amount of memory with its unit (kB, MB, GB, TB), e.g. {setting_example(s)!r}")
        amount, unit = int(match[1]) * MEMORY_UNITS[match[2]], match[2]
        text = f"{match[1]}{unit}"
    else:
        match = _TIME.fullmatch(text)
        if not match:
            raise BadSetting(f"{name} must be a duration (a whole number with ms, s, min, h or d; ms without), e.g. {setting_example(s)!r}")
        unit = match[2] or "ms"
        amount = int(match[1]) * TIME_UNITS[unit]
        text = f"{match[1]}{unit}"
    if not s.low <= amount <= s.high:
        raise BadSetting(f"{name} must be from {_shown(s.low, s)} to {_shown(s.high, s)}")
    return text


def setting_example(s: Setting) -> str:
    return {"int": "100", "memory": "64MB", "time": "30s", "enum": s.choices[0] if s.choices else "", "name": "UTC"}[s.kind]


def setting_amount(name: str, value: str) -> int:
    """A clean memory or int value in its base unit (kB for memory)."""
    s = SETTINGS[name]
    if s.kind == "memory":
        match = _MEMORY.fullmatch(value)
        assert match is not None
        return int(match[1]) * MEMORY_UNITS[match[2]]
    return int(value)


# --- memory limits (the engine's format, as BERTH_DB_MEMORY: 512m, 1g) ----------

MEMORY_LIMIT = re.compile(r"([0-9]{1,7})([kmg]?)")
LIMIT_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# A db needs room for its shared memory and a few backends; an api for its runtime.
MEMORY_BOUNDS = {"db_memory": (64 * 1024**2, 64 * 1024**3), "api_memory": (32 * 1024**2, 16 * 1024**3)}


def memory_bytes(limit: str) -> int:
    """Bytes of a limit in the engine's format ("512m"); ValueError for anything else."""
    match = MEMORY_LIMIT.fullmatch(limit.strip().lower())
    if not match:
        raise ValueError(limit)
    return int(match[1]) * LIMIT_FACTORS[match[2]]


def memory_clean(field: str, value: object) -> str:
    """A memory limit as the engine takes it (lowercase, e.g. "512m"); BadSetting naming the fault."""
    low, high = MEMORY_BOUNDS[field]
    if not isinstance(value, str) or not MEMORY_LIMIT.fullmatch(value.strip().lower()):
        raise BadSetting(f"{field} must be a memory limit such as '512m' or '1g' (a whole number, then k, m or g)")
    text = value.strip().lower()
    if not low <= memory_bytes(text) <= high:
        raise BadSetting(f"{field} must be from {low // 1024**2}m to {high // 1024**3}g")
    return text
