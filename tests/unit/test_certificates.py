"""TLS: Berth's CA, each project's server certificate, how it reaches the db container, and /v1/ca.pem."""

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone

from projects.models import CertificateAuthority, Project
from projects.stack.spec import stack_spec
from projects.services.lifecycle import requests as lifecycle
from projects.services.settings.certificates import ca_get, project_certificate_ensure


def make_project(user, api="postgraphile") -> Project:
    project = lifecycle.project_create(owner=user, api=api).project  # named after its id: names are unique per owner
    project.refresh_from_db()
    return project


def sans(pem: str) -> list:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_the_ca_is_made_once_with_its_key_encrypted_at_rest(db):
    first, second = ca_get(), ca_get()
    assert first.pk == second.pk and CertificateAuthority.objects.count() == 1
    assert "PRIVATE KEY" in first.key_pem and "PRIVATE KEY" not in first.key_encrypted
    cert = x509.load_pem_x509_certificate(first.cert_pem.encode())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_a_started_project_gets_a_certificate_for_the_public_host_signed_by_the_ca(user, settings):
    settings.BERTH_PUBLIC_HOST = "127.0.0.1"
    project = make_project(user)  # created and started on FakeRuntime
    assert project.tls_host == "127.0.0.1" and project.tls_not_after > timezone.now() + datetime.timedelta(days=300)
    names = sans(project.tls_cert_pem)
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == [f"project_{project.public_id}_db"]  # the api's name for it
    cert = x509.load_pem_x509_certificate(project.tls_cert_pem.encode())
    ca = x509.load_pem_x509_certificate(ca_get().cert_pem.encode())
    cert.verify_directly_issued_by(ca)
    assert "PRIVATE KEY" in project.tls_key and "PRIVATE KEY" not in project.tls_key_encrypted


def test_a_host_name_goes_in_as_a_dns_name(user, settings):
    settings.BERTH_PUBLIC_HOST = "db.example.test"
    project = make_project(user)
    assert sans(project.tls_cert_pem).get_values_for_type(x509.DNSName)[0] == "db.example.test"


def test_certificates_are_renewed_when_the_host_changes_or_expiry_nears_and_not_otherwise(user, settings):
    project = make_project(user)
    first = project.tls_cert_pem
    assert project_certificate_ensure(project) is False and project.tls_cert_pem == first
    settings.BERTH_PUBLIC_HOST = "new.example.test"
    assert project_certificate_ensure(project) is True
    project.refresh_from_db()
    assert project.tls_cert_pem != first and project.tls_host == "new.example.test"
    Project.objects.filter(pk=project.pk).update(tls_not_after=timezone.now() + datetime.timedelta(days=10))
    project.refresh_from_db()
    renewed = project.tls_cert_pem
    assert project_certificate_ensure(project) is True
    project.refresh_from_db()
    assert project.tls_cert_pem != renewed and project.tls_not_after > timezone.now() + datetime.timedelta(days=300)


def test_the_db_container_gets_key_certificate_and_rules_owned_by_postgres_mode_0600(user, settings):
    project = make_project(user)
    spec = stack_spec(project)
    files = {f.path: f for f in spec.db.files}
    assert set(files) == {"/etc/berth/server.crt", "/etc/berth/server.key", "/etc/berth/pg_hba.conf"}
    assert {(f.uid, f.gid, f.mode) for f in files.values()} == {(999, 999, 0o600)}
    assert files["/etc/berth/server.key"].content.decode() == project.tls_key
    command = " ".join(spec.db.command)
    for option in ("ssl=on", "ssl_cert_file=/etc/berth/server.crt", "ssl_key_file=/etc/berth/server.key", "hba_file=/etc/berth/pg_hba.conf"):
        assert f"-c {option}" in command
    # Plaintext stays allowed by default; every rule asks for a password.
    hba = files["/etc/berth/pg_hba.conf"].content.decode()
    assert "host    all  all  all           scram-sha-256" in hba and "trust" not in hba
    assert "sslmode" not in spec.api.environment["DATABASE_URL"]
    assert "sslmode" not in stack_spec(make_project(user, api="postgrest")).api.environment["PGRST_DB_URI"]
    assert "pg_reload_conf()" in spec.db_probe.bootstrap_sql  # a renewal applies on start


def test_require_tls_leaves_only_hostssl_from_outside_and_the_api_uses_tls(user, settings):
    project = make_project(user)
    settings.BERTH_DB_REQUIRE_TLS = True
    spec = stack_spec(project)
    hba = next(f for f in spec.db.files if f.path.endswith("pg_hba.conf")).content.decode()
    outside = [line for line in hba.splitlines() if line.split()[0] in ("host", "hostssl") and line.split()[3] == "all"]
    assert outside == ["hostssl all  all  all           scram-sha-256"]
    assert "?sslmode=require&uselibpqcompat=true&" in spec.api.environment["DATABASE_URL"]
    assert "?sslmode=require&uselibpqcompat=true&" in spec.api.environment["BERTH_ANON_DATABASE_URL"]
    assert "sslmode=require" in spec.api.command[spec.api.command.index("--owner-connection") + 1]
    assert stack_spec(make_project(user, api="postgrest")).api.environment["PGRST_DB_URI"].endswith("?sslmode=require")


def test_backup_throwaways_run_without_the_db_containers_tls_files(user):
    from projects.services.backups.dumps import _scratch_spec

    project = make_project(user)
    backup = project.backups.model(project=project, postgres_version=project.postgres_version)
    scratch = _scratch_spec(project, purpose="verify", backup=backup, own_volume=True)
    assert not any("ssl" in arg or "hba_file" in arg for arg in scratch.command)
    assert scratch.confinement.cap_add == ("CHOWN", "FOWNER", "SETGID", "SETUID")


def test_ca_pem_is_public_and_is_the_ca(client, db):
    response = client.get("/v1/ca.pem")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-pem-file"
    cert = x509.load_pem_x509_certificate(response.content)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert response.content.decode() == ca_get().cert_pem


def test_renew_certificates_starts_running_projects_whose_certificate_is_due(user, settings):
    from io import StringIO

    from django.core.management import call_command

    running, fresh = make_project(user), make_project(user)
    Project.objects.filter(pk=running.pk).update(tls_not_after=timezone.now() + datetime.timedelta(days=5))
    before = running.operations.count()
    out = StringIO()
    call_command("renew_certificates", stdout=out)
    running.refresh_from_db()
    assert running.tls_not_after > timezone.now() + datetime.timedelta(days=300)  # the start renewed it
    assert running.operations.count() == before + 1 and running.operations.first().kind == "start"
    assert fresh.operations.count() == 1  # its create only: nothing due
    assert "1 certificate(s) due, 1 start(s) queued" in out.getvalue()
