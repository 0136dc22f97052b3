from django.urls import path, re_path

from projects.views import backups, projects, settings, staff, tokens

urlpatterns = [
    path("", projects.project_list, name="project-list"),
    path("projects/new", projects.project_create, name="project-create"),
    path("projects/<str:project_id>", projects.project_detail, name="project-detail"),
    path("projects/<str:project_id>/row", projects.project_row, name="project-row"),
    path("projects/<str:project_id>/logs", projects.project_logs, name="project-logs"),
    path("projects/<str:project_id>/reveal", projects.project_reveal, name="project-reveal"),
    path("projects/<str:project_id>/settings", settings.project_settings, name="project-settings"),
    path("projects/<str:project_id>/rotate", settings.project_rotate, name="project-rotate"),
    re_path(
        r"^projects/(?P<project_id>[^/]+)/(?P<action>stop|start|delete|restore|purge|upgrade|rollback_upgrade|drop_kept_volume)$",
        projects.project_action,
        name="project-action",
    ),
    path("projects/<str:project_id>/backups", backups.project_backups, name="project-backups"),
    path("projects/<str:project_id>/backups/new", backups.project_backup_create, name="project-backup-create"),
    path("projects/<str:project_id>/backup-schedule", backups.project_backup_schedule, name="project-backup-schedule"),
    path("backups/<str:backup_id>/verify", backups.backup_verify, name="backup-verify"),
    path("backups/<str:backup_id>/restore", backups.backup_restore, name="backup-restore"),
    path("backups/<str:backup_id>/download", backups.backup_download, name="backup-download"),
    path("tokens", tokens.token_list, name="token-list"),
    path("tokens/<int:token_id>/revoke", tokens.token_revoke, name="token-revoke"),
    path("drift", staff.drift, name="drift"),
    path("nodes", staff.nodes, name="nodes"),
    path("nodes/<str:name>/forget", staff.node_forget, name="node-forget"),
]
