"""The cost-actions table is reached as the builds table is: by key, or by the managed identity."""

from __future__ import annotations

from typing import Any

from azure.core.credentials import AccessToken

from shared.costguard.actions import table_service


class FixedToken:
    """A TokenCredential that hands out one fixed token (nothing here connects)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("token", 2**31)


AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


def test_a_keyless_connection_signs_in_with_the_identity_on_the_table_endpoint() -> None:
    credential = FixedToken()
    service = table_service("AccountName=acct;EndpointSuffix=core.windows.net", credential)
    assert service.url.startswith("https://acct.table.core.windows.net")
    assert service.credential is credential


def test_a_connection_with_a_key_uses_the_key_even_when_an_identity_is_at_hand() -> None:
    service = table_service(AZURITE, FixedToken())
    assert service.url.startswith("http://127.0.0.1:10002/devstoreaccount1")
    assert not isinstance(service.credential, FixedToken)
