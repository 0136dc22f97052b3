"""A backup's file as an HTTP answer: the one download rule, for the dashboard and the JSON API alike.

Each edge renders the refusals (services/errors.py) its own way; neither
imports the other.
"""

import base64
import hashlib

from django.contrib.auth.models import User
from django.http import FileResponse

from projects.services.backups.files import backup_path

from .models import Backup
from .services.errors import FileGone, Forbidden, InvalidTransition

B = Backup.State
HAS_FILE = (B.SUCCEEDED, B.VERIFIED, B.VERIFY_FAILED)


class BackupUnverified(InvalidTransition):
    """The file failed verification: served only when the owner insists (?force=1)."""

    code = "verify_failed"


def backup_download(*, backup: Backup, user: User, force: bool = False) -> FileResponse:
    """The backup's file, streamed as an attachment with its RFC 9530 `Repr-Digest`.

    Refused (nothing is read) for anyone but the project's owner, for a backup
    without a file, and for one that failed verification unless `force`; then
    the digest is the one of the bytes served, not the one recorded at dump time.
    """
    if backup.project.owner_id != user.pk:
        raise Forbidden("only the project's owner can download its backups: they hold every row")
    if backup.state not in HAS_FILE:
        raise InvalidTransition(f"backup {backup.public_id} is {backup.state}: it has no file")
    if backup.state == B.VERIFY_FAILED and not force:
        raise BackupUnverified(
            f"backup {backup.public_id} failed verification: {backup.error or 'it did not restore as dumped'}. "
            "Its file is not known to be the dump; download it anyway with ?force=1 (served with the file's actual sha-256)"
        )
    try:
        handle = open(backup_path(backup), "rb")
    except FileNotFoundError:
        raise FileGone(f"backup {backup.public_id}'s file is missing from the backup directory") from None
    if backup.state == B.VERIFY_FAILED:
        # The recorded digest would vouch for bytes this file may not hold.
        digest = hashlib.file_digest(handle, "sha256").digest()
        handle.seek(0)
    else:
        digest = bytes.fromhex(backup.sha256)
    created = backup.created_at.strftime("%Y%m%d-%H%M%S")
    # A file of several databases is a tar of one archive each (backups/dumps.py).
    filename = f"{backup.project.public_id}-{created}-{backup.public_id}.{'tar' if backup.databases else 'dump'}"
    response = FileResponse(handle, as_attachment=True, filename=filename, content_type="application/octet-stream")
    # RFC 9530: the client can check what it got against what was dumped.
    response["Repr-Digest"] = f"sha-256=:{base64.b64encode(digest).decode()}:"
    return response
