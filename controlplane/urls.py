from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("v1/", include("projects.api_urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("projects.urls")),
]
