from django.urls import path, re_path

from . import api

urlpatterns = [
    path("projects", api.projects_collection),
    path("projects/<str:project_id>", api.project_detail),
    re_path(r"^projects/(?P<project_id>[^/]+)/(?P<action>stop|start|restore|purge)$", api.project_action),
    path("projects/<str:project_id>/operations", api.project_operations),
    path("operations/<str:operation_id>", api.operation_detail),
    re_path(r"^(?P<path>.*)$", api.not_found),
]
