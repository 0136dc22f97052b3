"""The project's API keys: HS256 JWTs signed with its secret, the one place Berth makes a JWT.

Twenty lines of the standard library instead of a dependency: Berth only
signs (the api containers verify), with one fixed algorithm.
"""

import base64
import hashlib
import hmac
import json
from typing import Any

from projects.models import Project
from projects.stack.spec import ANON_ROLE, JWT_AUDIENCE, SERVICE_ROLE

ISSUER = "berth"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_sign(claims: dict[str, Any], secret: str) -> str:
    """An HS256 JWT of `claims` (compact JSON, keys sorted so a key is the same every time it is shown)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def project_key(project: Project, role: str) -> str:
    """A long-lived key for `role`; derived, never stored: the same secret and creation time give the same key."""
    claims = {"role": role, "iss": ISSUER, "aud": JWT_AUDIENCE, "iat": int(project.created_at.timestamp())}
    return jwt_sign(claims, project.jwt_secret)


def project_keys(project: Project) -> dict[str, str]:
    return {"anon_key": project_key(project, ANON_ROLE), "service_key": project_key(project, SERVICE_ROLE)}
