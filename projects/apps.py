from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ProjectsConfig(AppConfig):
    name = "projects"
    default_auto_field = "django.db.models.BigAutoField"


class BerthAdminConfig(admin_apps.AdminConfig):
    # The admin's site refuses a session that still owes its second factor
    # (projects/mfa.py), whatever the middleware in front of it does.
    default_site = "projects.mfa.SecondFactorAdminSite"
    # Not the config of the `projects` app: ProjectsConfig stays the one Django picks for it.
    default = False
