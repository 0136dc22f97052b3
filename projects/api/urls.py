from django.urls import path, re_path

from projects.api import projects as api
from projects.api import backups as api_backups
from projects.api import openapi

urlpatterns = [
    path("projects", api.projects_collection),
    path("projects/<str:project_id>", api.project_detail),
    re_path(r"^projects/(?P<project_id>[^/]+)/(?P<action>stop|start|restore|purge|upgrade|rollback-upgrade|move)$", api.project_action),
    path("projects/<str:project_id>/kept-volume", api.project_kept_volume),
    path("projects/<str:project_id>/operations", api.project_operations),
    path("projects/<str:project_id>/metrics", api.project_metrics),
    path("projects/<str:project_id>/rotate", api.project_rotate),
    path("operations/<str:operation_id>", api.operation_detail),
    path("pool", api.pool),
    path("nodes/<str:name>/forget", api.node_forget),
    path("projects/<str:project_id>/backups", api_backups.project_backups),
    path("projects/<str:project_id>/backup-schedule", api_backups.project_backup_schedule),
    path("backups/<str:backup_id>", api_backups.backup_detail),
    re_path(r"^backups/(?P<backup_id>[^/]+)/(?P<action>verify|restore)$", api_backups.backup_action),
    path("backups/<str:backup_id>/download", api_backups.backup_download),
    # Public, like any API reference: it holds no data (projects/openapi.py).
    path("openapi.json", openapi.openapi_json),
    # Public too: a certificate, which clients need before they can trust a database.
    path("ca.pem", api.ca_pem),
    re_path(r"^(?P<path>.*)$", api.not_found),
]
