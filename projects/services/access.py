"""Who may act on a project: its owner, or an operator granted `projects.change_project`.

Seeing is not acting: staff see every project (selectors.py), but `is_staff`
alone lets nobody stop, delete, purge or back up another user's project, nor
delete its backups. An operator grants the model permission in the admin (a
superuser has it). Berth's own passes act with no user and are not asked.
"""

from django.contrib.auth.models import User

from projects.models import Project

from .errors import NotPermitted

ACT_PERMISSION = "projects.change_project"


def project_may_act(*, user: User | None, project: Project) -> bool:
    """Whether `user` may change `project` (None: Berth itself, which may)."""
    return user is None or project.owner_id == user.pk or user.has_perm(ACT_PERMISSION)


def project_check_actor(*, user: User | None, project: Project) -> None:
    """NotPermitted unless `user` may change `project`."""
    if not project_may_act(user=user, project=project):
        raise NotPermitted(
            f"project {project.public_id} is {project.owner.username if project.owner else 'Berth'}'s: acting on another user's project "
            f"needs the {ACT_PERMISSION} permission, which an operator grants in the admin"
        )
