"""Short-lived read-only SAS URLs for the data containers a request names."""

from __future__ import annotations

from datetime import timedelta

from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

from shared.state.record import utcnow

SAS_LIFETIME = timedelta(hours=2)


def read_only_container_url(connection: str, container: str) -> str:
    """A container URL with a read+list SAS valid for two hours. A secret: never log it."""
    service = BlobServiceClient.from_connection_string(connection)
    credential = service.credential
    key = getattr(credential, "account_key", None)
    if not key:
        raise RuntimeError("the data storage connection has no account key to sign a SAS with")
    start = utcnow() - timedelta(minutes=5)  # tolerate clock skew on the VM
    sas = generate_container_sas(
        account_name=service.account_name or "",
        container_name=container,
        account_key=key,
        permission=ContainerSasPermissions(read=True, list=True),
        start=start,
        expiry=start + SAS_LIFETIME,
    )
    return f"{service.url.rstrip('/')}/{container}?{sas}"
