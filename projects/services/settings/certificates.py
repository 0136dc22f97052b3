"""TLS for the projects' databases: Berth's CA (made once) and each project's server certificate.

A certificate is issued when a project first starts, and renewed when it is
within tls.RENEW_BEFORE of expiring or BERTH_PUBLIC_HOST changed. The runtime
copies it into the db container on every start, and the bootstrap reloads
the server's configuration, so a start applies a renewal.
"""

from django.db import IntegrityError, transaction
from django.utils import timezone

from projects import tls
from projects.models import CertificateAuthority, Project
from projects.runtime.base import object_names

CA_NAME = "berth"


def ca_get() -> CertificateAuthority:
    """Berth's CA, made on first use; two processes that race both end with the same one."""
    ca = CertificateAuthority.objects.filter(name=CA_NAME).first()
    if ca is not None:
        return ca
    cert_pem, key_pem = tls.ca_create("Berth CA")
    ca = CertificateAuthority(name=CA_NAME, cert_pem=cert_pem)
    ca.key_pem = key_pem
    try:
        with transaction.atomic():
            ca.save()
    except IntegrityError:
        return CertificateAuthority.objects.get(name=CA_NAME)
    return ca


def certificate_hosts(project: Project) -> list[str]:
    # The public host for clients (on a Swarm, its node's address); the container name for the api inside the project network.
    return [project.public_host, object_names(project.public_id)["db"]]


def certificate_is_due(project: Project) -> bool:
    return (
        not project.tls_cert_pem
        or project.tls_host != project.public_host
        or project.tls_not_after is None
        or project.tls_not_after - tls.RENEW_BEFORE <= timezone.now()
    )


def project_certificate_ensure(project: Project) -> bool:
    """Issue or renew the project's server certificate if it is due; True when it changed."""
    if not certificate_is_due(project):
        return False
    ca = ca_get()
    cert_pem, key_pem, not_after = tls.server_certificate(ca_cert_pem=ca.cert_pem, ca_key_pem=ca.key_pem, hosts=certificate_hosts(project))
    project.tls_cert_pem, project.tls_key, project.tls_host, project.tls_not_after = cert_pem, key_pem, project.public_host, not_after
    Project.objects.filter(pk=project.pk).update(
        tls_cert_pem=cert_pem, tls_key_encrypted=project.tls_key_encrypted, tls_host=project.tls_host, tls_not_after=not_after
    )
    return True
