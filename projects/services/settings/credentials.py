"""A new project's generated secrets: the same for a create and for a warm-pool stack."""

import secrets

from projects.models import Project


def project_credentials_generate(project: Project) -> None:
    """Give an unsaved project its own passwords and JWT secret (stored encrypted by the model)."""
    project.db_password = secrets.token_urlsafe(24)
    project.jwt_secret = secrets.token_urlsafe(48)  # PostgREST wants at least 32 characters
    # Berth's own superuser: the owner (`db_user`) is not one (see spec.BOOTSTRAP_SQL).
    project.admin_password = secrets.token_urlsafe(24)
    project.authenticator_password = secrets.token_urlsafe(24)
