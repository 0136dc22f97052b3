from django.urls import path, re_path

from . import views

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/new", views.project_create, name="project-create"),
    path("projects/<str:project_id>", views.project_detail, name="project-detail"),
    path("projects/<str:project_id>/row", views.project_row, name="project-row"),
    path("projects/<str:project_id>/logs", views.project_logs, name="project-logs"),
    path("projects/<str:project_id>/reveal", views.project_reveal, name="project-reveal"),
    re_path(
        r"^projects/(?P<project_id>[^/]+)/(?P<action>stop|start|delete|restore|purge)$",
        views.project_action,
        name="project-action",
    ),
    path("tokens", views.token_list, name="token-list"),
    path("tokens/<int:token_id>/revoke", views.token_revoke, name="token-revoke"),
]
