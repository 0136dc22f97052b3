from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from projects import mfa, scrape

# Sign-in, sign-out and password change only. Berth sends no mail, so the
# password-reset views would fail when used; an operator resets a password in
# the admin or with `manage.py changepassword`.
accounts = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    # The second factor (projects/mfa.py): the code after the password, enrolment, the account's page.
    path("2fa/", mfa.second_factor, name="second-factor"),
    path("2fa/verify", mfa.second_factor_verify, name="second-factor-verify"),
    path("2fa/enrol", mfa.second_factor_enrol, name="second-factor-enrol"),
    path("2fa/recovery-codes", mfa.recovery_codes_new, name="second-factor-recovery-codes"),
    path("2fa/remove", mfa.second_factor_delete, name="second-factor-remove"),
]

urlpatterns = [
    path("v1/", include("projects.api.urls")),
    path("metrics", scrape.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include(accounts)),
    path("", include("projects.urls")),
]
