"""The pages behind the one-click links: GET confirms, POST acts (once). No sign-in: the
link's signature is the only authority, and it allows exactly its one action."""

from __future__ import annotations

import logging
from datetime import datetime

from shared.runtime import Runtime
from shared.workstations import api
from shared.workstations.links import ACTIONS, LinkRefused, check, links_for, page, signing_key
from shared.workstations.store import WorkstationNotFound

logger = logging.getLogger(__name__)


def _checked(rt: Runtime, ws_id: str, action: str, query: dict[str, str], now: datetime) -> str:
    """The link's use key if it is valid and unused; LinkRefused otherwise."""
    key = signing_key(rt)
    if key is None:
        raise LinkRefused(404, "one-click links are not enabled here")
    link = check(key, ws_id, action, query, now)
    if rt.store.workstations().link_used(link.signature):
        raise LinkRefused(410, "this link was already used")
    return link.signature


def confirm_page(
    rt: Runtime, ws_id: str, action: str, query: dict[str, str], now: datetime
) -> tuple[int, str]:
    """GET: what the link would do, and a button to do it. Changes nothing."""
    try:
        _checked(rt, ws_id, action, query, now)
        ws = rt.store.workstations().get(ws_id).ws
    except LinkRefused as exc:
        return exc.status, page("Link not usable", str(exc))
    except WorkstationNotFound:
        return 404, page("Link not usable", "this workstation no longer exists")
    what = ACTIONS[action][0]
    message = f"Workstation {ws.id} of {ws.owner}: {what}?"
    return 200, page("Auto-stop", message, confirm=True)


def act(
    rt: Runtime, ws_id: str, action: str, query: dict[str, str], now: datetime
) -> tuple[int, str]:
    """POST: record the link as used, then do its one action."""
    try:
        use = _checked(rt, ws_id, action, query, now)
        ws = rt.store.workstations().get(ws_id).ws
    except LinkRefused as exc:
        return exc.status, page("Link not usable", str(exc))
    except WorkstationNotFound:
        return 404, page("Link not usable", "this workstation no longer exists")
    store = rt.store.workstations()
    if not store.use_link(use, ws.id, now):
        return 410, page("Link not usable", "this link was already used")
    answer = api.snooze_running(rt, ws, ACTIONS[action][1], now)
    if answer.status != 200:
        store.release_link(use)  # nothing was done: the link may be tried again
        problems = answer.body.get("problems") or [{}]
        return answer.status, page("Not done", str(problems[0].get("message", "try again")))
    logger.info("workstation %s: one-click %s", ws.id, action)
    stop_at = answer.body.get("stop_at")
    done = f"tonight's stop moved to {stop_at}" if stop_at else "no stop tonight"
    return 200, page("Done", f"Workstation {ws.id}: {done}.")


def warning_extras(rt: Runtime, vm_tags: dict[str, str], stop_at: datetime) -> dict[str, str]:
    """For a workstation's VM: the three links and an e-mail-friendly text; {} otherwise."""
    from shared.azure.naming import WORKSTATION_TAG

    ws_id = vm_tags.get(WORKSTATION_TAG, "")
    if not ws_id or not rt.settings.public_url:
        return {}
    try:
        key = signing_key(rt, make=True)
    except Exception as exc:  # the warning still goes out, without links
        logger.warning("no one-click links for %s: the key is unavailable (%s)", ws_id, exc)
        return {}
    if key is None:
        return {}
    links = links_for(key, rt.settings.public_url, ws_id, stop_at)
    text = (
        f"Your workstation {ws_id} stops at {stop_at.isoformat()} (UTC).\n"
        f"Skip tonight's stop: {links['skip_tonight']}\n"
        f"Delay it by 1 hour: {links['delay_1h']}\n"
        f"Delay it by 2 hours: {links['delay_2h']}\n"
        "Each link works once, until the stop."
    )
    return {**links, "text": text}
