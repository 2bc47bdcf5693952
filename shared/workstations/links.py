"""One-click links in the auto-stop warning: skip tonight, delay 1 h, delay 2 h.

A link needs no function key and no sign-in, so it carries its own proof: an HMAC-SHA256 over
the workstation id, the action and that night's stop instant, with a key only the controller
holds (a Key Vault secret on Azure, the LABIMAGE_LINK_KEY setting offline). It expires at the
stop instant and works once: its use is recorded in Table storage before it acts. Opening it
(GET) only shows a confirmation page; the page's button (POST) acts.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from shared.runtime import Runtime

KEY_SECRET_NAME = "labimage-workstation-link-key"
ACTIONS: dict[str, tuple[str, int | None]] = {
    "skip": ("skip tonight's stop", None),
    "delay1": ("delay the stop by 1 hour", 1),
    "delay2": ("delay the stop by 2 hours", 2),
}
ROUTE = "links/workstations/{id}/{action}"
_WS_ID = re.compile(r"^w[a-z0-9]{9}$")
_SIG = re.compile(r"^[0-9a-f]{64}$")
_EPOCH = re.compile(r"^[0-9]{9,11}$")


class LinkRefused(Exception):
    """The link is not one the controller signed, has expired, or was used."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Link:
    ws_id: str
    action: str
    stop_at: datetime
    signature: str


def _mac(key: bytes, ws_id: str, action: str, epoch: int) -> str:
    message = f"labimage-workstation-link|{ws_id}|{action}|{epoch}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(key: bytes, ws_id: str, action: str, stop_at: datetime) -> Link:
    epoch = int(stop_at.timestamp())
    return Link(ws_id, action, stop_at, _mac(key, ws_id, action, epoch))


def url_of(base_url: str, link: Link) -> str:
    path = ROUTE.format(id=link.ws_id, action=link.action)
    query = urlencode({"stop": int(link.stop_at.timestamp()), "sig": link.signature})
    return f"{base_url.rstrip('/')}/api/{path}?{query}"


def links_for(key: bytes, base_url: str, ws_id: str, stop_at: datetime) -> dict[str, str]:
    """The three links of one workstation and one night's stop."""
    names = {"skip": "skip_tonight", "delay1": "delay_1h", "delay2": "delay_2h"}
    return {names[a]: url_of(base_url, sign(key, ws_id, a, stop_at)) for a in ACTIONS}


def check(key: bytes, ws_id: str, action: str, query: dict[str, str], now: datetime) -> Link:
    """The link these request parts make, if the controller signed it and it has not expired;
    LinkRefused otherwise. Every part is checked for form before it is used."""
    stop, signature = query.get("stop", ""), query.get("sig", "")
    well_formed = (
        _WS_ID.fullmatch(ws_id)
        and action in ACTIONS
        and _EPOCH.fullmatch(stop)
        and _SIG.fullmatch(signature)
    )
    if not well_formed:
        raise LinkRefused(400, "this link is incomplete or damaged")
    epoch = int(stop)
    if not hmac.compare_digest(_mac(key, ws_id, action, epoch), signature):
        raise LinkRefused(403, "this link was not made by labimage")
    stop_at = datetime.fromtimestamp(epoch, UTC)
    if now >= stop_at:
        raise LinkRefused(410, "this link expired at the stop it was for")
    return Link(ws_id, action, stop_at, signature)


def signing_key(rt: Runtime, *, make: bool = False) -> bytes | None:
    """The link key: the Key Vault secret on Azure, else the setting; None when there is none.

    Only the auto-stop scan, the one place that signs links, passes `make`: it is a timer
    trigger, and the Functions host runs a timer on one instance at a time (a storage lock:
    "Timer trigger for Azure Functions", section Scale-out), so the secret has one writer.
    Two processes that made it at once would each keep a different version, and each would
    refuse the other's links. Checking a link only reads: no secret yet means no link was
    ever signed."""
    s = rt.settings
    if s.key_vault_url:
        return _vault_key(s.key_vault_url, s.arm_ca_bundle, rt.azure.credential, make)
    return s.workstation_link_key.encode() if s.workstation_link_key else None


_vault_keys: dict[str, bytes] = {}  # vault URL -> the key, once found (read once per process)


def _vault_key(
    vault_url: str, ca_bundle: str | None, credential: TokenCredential, make: bool
) -> bytes | None:
    """The secret's value; with `make`, made (random, 256 bits) when missing. A missing
    secret is not remembered: the next call looks again."""
    if vault_url in _vault_keys:
        return _vault_keys[vault_url]
    kwargs: dict[str, Any] = {"connection_verify": ca_bundle} if ca_bundle else {}
    client = SecretClient(vault_url, credential, **kwargs)
    try:
        value = client.get_secret(KEY_SECRET_NAME).value
    except ResourceNotFoundError:
        value = None
    if not value and make:
        value = client.set_secret(KEY_SECRET_NAME, secrets.token_hex(32)).value
    if not value:
        return None
    _vault_keys[vault_url] = str(value).encode()
    return _vault_keys[vault_url]


def page(title: str, message: str, confirm: bool = False) -> str:
    """A small page; every text is escaped (ids and times come from the request). With
    `confirm`, a button that POSTs to the page's own address (no action attribute: nothing
    of the request is echoed into the form)."""
    button = ""
    if confirm:
        button = '<form method="post"><button type="submit">Confirm</button></form>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{button}</body></html>"
    )
