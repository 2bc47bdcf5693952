"""Reading the caller from X-MS-CLIENT-PRINCIPAL, and when not to."""

from __future__ import annotations

import base64
import json
from typing import Any

from shared.api.caller import Caller, platform_auth_enabled, signed_in_caller


def header(claims: list[dict[str, Any]], **extra: Any) -> dict[str, str]:
    document = {"auth_typ": "aad", "claims": claims, **extra}
    return {"X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(document).encode()).decode()}


OID = {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": "0b1e"}


def test_the_principal_gives_object_id_name_and_roles() -> None:
    caller = signed_in_caller(
        header(
            [
                OID,
                {"typ": "preferred_username", "val": "ada@example.org"},
                {"typ": "roles", "val": "labimage.admin"},
            ]
        ),
        True,
    )
    assert caller == Caller("0b1e", "ada@example.org", frozenset({"labimage.admin"}))
    assert caller.is_admin and caller.owns("0B1E") and not caller.owns("")


def test_roles_under_the_role_type_the_principal_names_count_too() -> None:
    role_typ = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    caller = signed_in_caller(
        header(
            [{"typ": "oid", "val": "sp-1"}, {"typ": role_typ, "val": "labimage.admin"}],
            role_typ=role_typ,
        ),
        True,
    )
    assert caller is not None and caller.is_admin
    assert caller.name == "sp-1"  # a service principal has no user name: its object id


def test_nothing_trustworthy_means_nobody() -> None:
    good = header([OID, {"typ": "preferred_username", "val": "ada@example.org"}])
    assert signed_in_caller(good, False) is None  # App Service authentication is off
    assert signed_in_caller({}, True) is None
    assert signed_in_caller({"X-MS-CLIENT-PRINCIPAL": "%%%"}, True) is None
    assert signed_in_caller(header([{"typ": "name", "val": "no object id"}]), True) is None
    assert signed_in_caller({"X-MS-CLIENT-PRINCIPAL": "W10="}, True) is None  # "[]"
    weird = header([OID, {"typ": "preferred_username", "val": "Ada Lovelace; rm -rf"}])
    assert signed_in_caller(weird, True) == Caller("0b1e", "0b1e")


def test_the_platform_says_whether_authentication_is_on() -> None:
    assert platform_auth_enabled({"WEBSITE_AUTH_ENABLED": "True"})
    assert not platform_auth_enabled({"WEBSITE_AUTH_ENABLED": "False"})
    assert not platform_auth_enabled({})
    assert Caller.with_function_key().is_admin
