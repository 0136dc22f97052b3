from django.urls import path, re_path

from . import views

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/new", views.project_create, name="project-create"),
    path("projects/<str:project_id>", views.project_detail, name="project-detail"),
    path("projects/<str:project_id>/row", views.project_row, name="project-row"),
    path("projects/<str:project_id>/logs", views.project_logs, name="project-logs"),
    path("projects/<str:project_id>/reveal", views.project_reveal, name="project-reveal"),
    path("projects/<str:project_id>/settings", views.project_settings, name="project-settings"),
    path("projects/<str:project_id>/rotate", views.project_rotate, name="project-rotate"),
    re_path(
        r"^projects/(?P<project_id>[^/]+)/(?P<action>stop|start|delete|restore|purge|upgrade|rollback_upgrade|drop_kept_volume)$",
        views.project_action,
        name="project-action",
    ),
    path("projects/<str:project_id>/backups", views.project_backups, name="project-backups"),
    path("projects/<str:project_id>/backups/new", views.project_backup_create, name="project-backup-create"),
    path("projects/<str:project_id>/backup-schedule", views.project_backup_schedule, name="project-backup-schedule"),
    path("backups/<str:backup_id>/verify", views.backup_verify, name="backup-verify"),
    path("backups/<str:backup_id>/restore", views.backup_restore, name="backup-restore"),
    path("backups/<str:backup_id>/download", views.backup_download, name="backup-download"),
    path("tokens", views.token_list, name="token-list"),
    path("tokens/<int:token_id>/revoke", views.token_revoke, name="token-revoke"),
    path("drift", views.drift, name="drift"),
    path("nodes", views.nodes, name="nodes"),
    path("nodes/<str:name>/forget", views.node_forget, name="node-forget"),
]
