"""What the worker records never carries a project's secrets: operation errors, backup errors."""

from urllib.parse import quote

from projects.models import Project


def secrets_redact(text: str, project: Project) -> str:
    """`text` with the project's passwords and JWT secret (plain or percent-encoded) masked."""
    try:
        values = {project.db_password, project.jwt_secret, project.admin_password}
        if project.authenticator_password_encrypted:
            values.add(project.authenticator_password)
        if project.monitor_password_encrypted:
            values.add(project.monitor_password)
    except Exception:
        return text  # undecryptable secrets cannot be in the text either
    for value in filter(None, values | {quote(v, safe="") for v in values if v}):
        text = text.replace(value, "********")
    return text
