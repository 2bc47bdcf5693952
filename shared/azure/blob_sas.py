"""Short-lived read-only SAS URLs for the data containers a request names.

With an account key (Azurite, a key-based connection string) the SAS is signed with the key.
Without one (identity-based storage on Azure) it is a user delegation SAS: signed with a key
the managed identity asks the Blob service for, valid no longer than the SAS itself, and no
stronger than the identity's own rights (Storage Blob Data Reader on the data account).
"""

from __future__ import annotations

from datetime import timedelta

from azure.core.credentials import TokenCredential
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

from shared.settings import connection_has_secret, service_endpoint
from shared.state.record import utcnow

SAS_LIFETIME = timedelta(hours=2)


def read_only_container_url(
    connection: str, container: str, credential: TokenCredential | None = None
) -> str:
    """A container URL with a read+list SAS valid for two hours. A secret: never log it.

    `credential` (the managed identity) is needed only when `connection` carries no key.
    """
    start = utcnow() - timedelta(minutes=5)  # tolerate clock skew on the VM
    expiry = start + SAS_LIFETIME
    permission = ContainerSasPermissions(read=True, list=True)
    if connection_has_secret(connection):
        service = BlobServiceClient.from_connection_string(connection)
        key = getattr(service.credential, "account_key", None)
        if not key:
            raise RuntimeError("the data storage connection has no account key to sign a SAS with")
        sas = generate_container_sas(
            account_name=service.account_name or "",
            container_name=container,
            account_key=key,
            permission=permission,
            start=start,
            expiry=expiry,
            protocol=_protocol(service.url),
        )
    else:
        if credential is None:
            raise RuntimeError(
                "the data storage connection has no account key, and no identity was given "
                "to ask for a user delegation key"
            )
        service = BlobServiceClient(service_endpoint(connection, "blob"), credential=credential)
        delegation_key = service.get_user_delegation_key(start, expiry)
        sas = generate_container_sas(
            account_name=service.account_name or "",
            container_name=container,
            user_delegation_key=delegation_key,
            permission=permission,
            start=start,
            expiry=expiry,
            protocol=_protocol(service.url),
        )
    return f"{service.url.rstrip('/')}/{container}?{sas}"


def _protocol(account_url: str) -> str | None:
    """HTTPS only (`spr=https`) wherever the account speaks HTTPS, as every Azure account does;
    an emulator on plain HTTP (Azurite) gets no protocol restriction."""
    return "https" if account_url.lower().startswith("https://") else None
