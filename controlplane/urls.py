from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from projects import scrape

# Sign-in, sign-out and password change only. Berth sends no mail, so the
# password-reset views would fail when used; an operator resets a password in
# the admin or with `manage.py changepassword`.
accounts = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
]

urlpatterns = [
    path("v1/", include("projects.api.urls")),
    path("metrics", scrape.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include(accounts)),
    path("", include("projects.urls")),
]
