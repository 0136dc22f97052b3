"""Berth's own files (controlplane/files.py): the data directory 0700, its files 0600, the secret key made once."""

import os
import subprocess
import sys
from pathlib import Path

from controlplane.files import private_dir, private_file, secret_file_read_or_create

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_new_data_dir_is_0700_and_an_old_0755_one_is_tightened(tmp_path):
    assert mode(private_dir(tmp_path / "new")) == 0o700
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    old.chmod(0o755)
    assert mode(private_dir(old)) == 0o700


def test_a_private_file_is_created_0600_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        path = private_file(tmp_path / "berth.sqlite3")
    finally:
        os.umask(previous)
    assert mode(path) == 0o600


def test_the_secret_key_is_made_once_0600_and_kept(tmp_path):
    path = tmp_path / "secret_key"
    first = secret_file_read_or_create(path)
    assert mode(path) == 0o600 and len(first) > 40
    assert secret_file_read_or_create(path) == first


def test_a_fresh_start_leaves_nothing_readable_by_others(tmp_path):
    # As `up` starts on a new machine: settings create the directory, the key and the database.
    data = tmp_path / "data"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "controlplane.settings", "BERTH_DATA_DIR": str(data)}
    env.pop("DATABASE_URL", None)
    env.pop("SECRET_KEY", None)
    script = "import django; django.setup(); from django.db import connection; connection.ensure_connection()"
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert mode(data) == 0o700
    assert mode(data / "secret_key") == 0o600 and mode(data / "berth.sqlite3") == 0o600
