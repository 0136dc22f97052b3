"""A real framework's test runner against a project (issue 26, item 4), on the real engine.

A minimal Django project — one model, one test — is pointed at a fresh
project's db_url over verify-full TLS, as README's first-project section says
to. `migrate` runs twice (nothing the second time), then `manage.py test`
creates its test database, runs the test (a row through the ORM, then
`CREATE EXTENSION vector` and a nearest-neighbour query) and destroys it: the
wall a Django, Rails or Prisma user hit before the owner could create databases.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from tests.conftest import bearer
from tests.engine import Workers, api_act

pytestmark = pytest.mark.integration

SETTINGS = '''
import os
from urllib.parse import unquote, urlsplit

# README, "Your first project": the project's db_url, TLS verified with Berth's CA.
url = urlsplit(os.environ["DATABASE_URL"])
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.path.lstrip("/"), "USER": unquote(url.username), "PASSWORD": unquote(url.password),
        "HOST": url.hostname, "PORT": url.port,
        "OPTIONS": {"sslmode": "verify-full", "sslrootcert": os.environ["BERTH_CA"]},
    }
}
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "shelf"]
SECRET_KEY = "test-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
'''
MODELS = '''
from django.db import models


class Book(models.Model):
    title = models.CharField(max_length=100)
'''
TESTS = '''
from django.db import connection
from django.test import TestCase

from shelf.models import Book


class BookTests(TestCase):
    def test_a_book_is_kept_in_the_test_database(self):
        Book.objects.create(title="Moby-Dick")
        self.assertEqual(Book.objects.get().title, "Moby-Dick")
        self.assertEqual(connection.settings_dict["NAME"], "test_app")
        with connection.cursor() as cursor:
            cursor.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            self.assertEqual(cursor.fetchone(), (True,))
            # The extension apps reach for first, made by the owner in its test database: embeddings' nearest neighbour.
            cursor.execute("CREATE EXTENSION vector")
            cursor.execute("CREATE TABLE shelf_embedding (id serial PRIMARY KEY, title text, v vector(3))")
            cursor.execute("INSERT INTO shelf_embedding (title, v) VALUES ('far', '[9,9,9]'), ('near', '[1,1,2]'), ('mid', '[4,4,4]')")
            cursor.execute("SELECT title FROM shelf_embedding ORDER BY v <-> '[1,1,1]' LIMIT 1")
            self.assertEqual(cursor.fetchone(), ("near",))
'''
MANAGE = '''
import sys

from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
'''


@pytest.fixture
def workers(transactional_db, tmp_path):
    pool = Workers(1, tmp_path)
    pool.start()
    yield pool
    pool.stop()


def django_project(root: Path) -> Path:
    (root / "shelf" / "migrations").mkdir(parents=True)
    for path, text in {
        "site_settings.py": SETTINGS, "manage.py": MANAGE, "shelf/__init__.py": "", "shelf/models.py": MODELS,
        "shelf/tests.py": TESTS, "shelf/migrations/__init__.py": "",
    }.items():  # fmt: skip
        (root / path).write_text(textwrap.dedent(text))
    return root


def manage(root: Path, env: dict[str, str], *args: str) -> str:
    answer = subprocess.run([sys.executable, "manage.py", *args], cwd=root, env=env, capture_output=True, text=True, timeout=180)
    assert answer.returncode == 0, f"manage.py {' '.join(args)} exited {answer.returncode}:\n{answer.stdout}\n{answer.stderr}"
    return answer.stdout + answer.stderr


def test_a_django_projects_migrate_and_test_run_pass_against_the_db_url_over_verified_tls(workers, user, client, tmp_path):
    code, project = api_act(client, bearer(user), "post", "/v1/projects", {"name": "django-shop"})
    assert code == 201 and project["status"] == "running", project
    ca = tmp_path / "berth-ca.pem"
    ca.write_bytes(client.get("/v1/ca.pem").content)
    root = django_project(tmp_path / "site")
    # Only what a user's shell would have: Berth's own settings stay out of the child's environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BERTH_", "DATABASE_URL"))}
    env |= {"DJANGO_SETTINGS_MODULE": "site_settings", "PYTHONPATH": str(root), "DATABASE_URL": project["db_url"], "BERTH_CA": str(ca)}

    manage(root, env, "makemigrations", "shelf")
    manage(root, env, "migrate")
    assert "No migrations to apply." in manage(root, env, "migrate")  # idempotent
    ran = manage(root, env, "test", "--noinput", "-v", "2")
    assert "Creating test database for alias 'default'" in ran and "Destroying test database for alias 'default'" in ran
    assert "Ran 1 test" in ran and "OK" in ran

    with psycopg.connect(project["db_url"], sslmode="verify-full", sslrootcert=str(ca), connect_timeout=5) as conn:
        # The test database came and went; the real one holds the migrated table, empty.
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'test_app'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM shelf_book").fetchone() == (0,)
