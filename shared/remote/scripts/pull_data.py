#!/usr/bin/env python3
"""pull_data.py <params.json>: download blobs from one container through a read-only SAS URL.

params.json (mode 0600, it holds the SAS): {"container_url": "https://<acct>/<container>?<sas>",
  "blobs": ["a/b.csv", {"name": "c.bin", "sha256": "..."}] | null, "prefix": "raw/" | null,
  "destination": "/data/datasets", "owner": "azureuser" | null, "require_md5": false}

Each file is checked against the MD5 Blob storage holds for it (Content-MD5 or
x-ms-blob-content-md5), and its sha256 goes into manifest.json (working directory).
The SAS is never printed.
Uses only the standard library: it runs on a bare guest before any environment exists.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import pwd
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, TypeVar

API_VERSION = "2021-08-06"
CHUNK = 1 << 20
ATTEMPTS = 4
# What a read can fail with on the way, worth another try: the connection refused, reset or
# timed out, or the body cut short after the headers (http.client.IncompleteRead).
TRANSIENT = (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException)
T = TypeVar("T")


class PullError(Exception):
    pass


def _save(response: Any, out: Any) -> tuple[Any, Any, int, str | None, str | None]:
    """Write the body of `response` to `out` from its start (a retry overwrites a cut try);
    its digests, its size, the MD5 Blob storage holds for it and its ETag."""
    out.seek(0)
    out.truncate()
    md5, sha256, size = hashlib.md5(), hashlib.sha256(), 0
    stored_md5 = response.headers.get("x-ms-blob-content-md5") or response.headers.get(
        "Content-MD5"
    )
    while chunk := response.read(CHUNK):
        md5.update(chunk)
        sha256.update(chunk)
        size += len(chunk)
        out.write(chunk)
    return md5, sha256, size, stored_md5, response.headers.get("ETag")


class Container:
    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.query:
            raise PullError("container_url must be an http(s) URL with a SAS query")
        self.base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.name = urllib.parse.unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
        self.sas = parts.query

    def redact(self, text: str) -> str:
        return redact(text, "?" + self.sas)

    def _read(self, url: str, what: str, read: Callable[[Any], T]) -> T:
        """`read(response)` of a GET of `url`, the whole exchange tried again from the start
        when it fails transiently: a 5xx, a refused or reset connection, a timeout, a body cut
        short after the headers. `what` names the read in the error that ends the tries."""
        request = urllib.request.Request(url, headers={"x-ms-version": API_VERSION})
        for attempt in range(ATTEMPTS):
            last = attempt == ATTEMPTS - 1
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    return read(response)
            except urllib.error.HTTPError as exc:
                code = exc.headers.get("x-ms-error-code") if exc.headers else None
                status = f"HTTP {exc.code} {code or exc.reason}"
                if exc.code < 500:
                    raise PullError(f"{what}: {status} from Blob storage") from None
                if last:
                    raise PullError(
                        f"{what}: {status} from Blob storage, {ATTEMPTS} attempts"
                    ) from None
            except TRANSIENT as exc:
                if last:
                    reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
                    raise PullError(
                        f"{what}: cannot read from Blob storage, {ATTEMPTS} attempts: {reason}"
                    ) from None
            time.sleep(2**attempt)
        raise AssertionError("unreachable")

    def list(self, prefix: str) -> list[dict]:
        """List Blobs (restype=container&comp=list), following NextMarker."""
        blobs, marker = [], ""
        while True:
            query = {"restype": "container", "comp": "list", "prefix": prefix}
            if marker:
                query["marker"] = marker
            url = f"{self.base}?{urllib.parse.urlencode(query)}&{self.sas}"
            body = self._read(url, f"listing container {self.name}", lambda r: r.read())
            root = ET.fromstring(body)
            for blob in root.iter("Blob"):
                props = blob.find("Properties")
                blobs.append(
                    {
                        "name": blob.findtext("Name"),
                        "size": int(props.findtext("Content-Length") or 0)
                        if props is not None
                        else None,
                        "md5": (props.findtext("Content-MD5") or None)
                        if props is not None
                        else None,
                    }
                )
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return blobs

    def download(self, name: str, target: str, owner: tuple[int, int] | None) -> dict:
        """Get Blob into `target` through a temporary file; MD5 checked before the rename."""
        url = f"{self.base}/{urllib.parse.quote(name, safe='/')}?{self.sas}"
        directory = os.path.dirname(target)
        fd, tmp = tempfile.mkstemp(prefix=".pull-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                got = self._read(url, f"blob {name}", lambda response: _save(response, out))
            md5, sha256, size, stored_md5, etag = got
            actual_md5 = base64.b64encode(md5.digest()).decode()
            if stored_md5 and stored_md5 != actual_md5:
                raise PullError(f"MD5 mismatch for blob {name}: the download is corrupt")
            if owner:
                os.chown(tmp, *owner)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return {
            "size": size,
            "md5": actual_md5,
            "md5_verified": bool(stored_md5),
            "sha256": sha256.hexdigest(),
            "etag": etag,
        }


def redact(text: str, url: str) -> str:
    """`text` without the SAS query of `url` (raw or percent-decoded)."""
    sas = urllib.parse.urlsplit(url).query
    if not sas:
        return text
    return text.replace(sas, "<sas>").replace(urllib.parse.unquote(sas), "<sas>")


def safe_target(root: str, name: str) -> str:
    """`root/name`, refusing names that would leave root (.., absolute, empty parts)."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in name:
        raise PullError(f"blob name {name!r} cannot be stored safely under {root}")
    target = os.path.realpath(os.path.join(root, *parts))
    if os.path.commonpath([root, target]) != root:
        raise PullError(f"blob name {name!r} escapes {root}")
    return target


def make_dirs(root: str, path: str, owner: tuple[int, int] | None) -> None:
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        os.mkdir(directory, 0o755)
        if owner:
            os.chown(directory, *owner)


def run(params: dict) -> dict:
    container = Container(params["container_url"])
    try:
        return pull(container, params)
    except PullError as exc:
        raise PullError(container.redact(str(exc))) from None
    except Exception as exc:  # keep the SAS out of any unexpected message too
        raise PullError(container.redact(f"{type(exc).__name__}: {exc}")) from None


def local_name(name: str, prefix: str) -> str:
    """Where a blob lands below the destination: a copied prefix is cut off its name."""
    if prefix and name.startswith(prefix):
        rest = name[len(prefix) :].lstrip("/")
        return rest or name.rsplit("/", 1)[-1]
    return name


def pull(container: Container, params: dict) -> dict:
    root = os.path.realpath(params["destination"])
    if not os.path.isabs(params["destination"]):
        raise PullError("destination must be an absolute path")
    owner = None
    if params.get("owner"):
        user = pwd.getpwnam(params["owner"])
        owner = (user.pw_uid, user.pw_gid)
    make_dirs("/", root, owner)

    wanted = params.get("blobs")
    listed = {b["name"]: b for b in container.list(params.get("prefix") or "")}
    if wanted:
        entries = [w if isinstance(w, dict) else {"name": w} for w in wanted]
        for entry in entries:
            safe_target(root, entry["name"])  # refuse a bad name before any download
        missing = [e["name"] for e in entries if e["name"] not in listed]
        if missing:
            raise PullError(f"blobs not found in the container: {', '.join(missing[:10])}")
    else:
        entries = [{"name": name} for name in sorted(listed)]
        if not entries:
            raise PullError("no blob matches the requested prefix")

    files = []
    # Blobs and a prefix together (an exact rebuild of a prefix): exactly those blobs, placed
    # as the prefix places them.
    prefix = params.get("prefix") or ""
    for entry in entries:
        name = entry["name"]
        target = safe_target(root, local_name(name, prefix))
        make_dirs(root, os.path.dirname(target), owner)
        info = container.download(name, target, owner)
        if params.get("require_md5") and not info["md5_verified"]:
            raise PullError(f"blob {name} has no stored MD5 to verify against")
        if entry.get("sha256") and entry["sha256"].lower() != info["sha256"]:
            raise PullError(f"sha256 mismatch for blob {name}")
        print(f"pull_data: {name} ({info['size']} bytes) ok", file=sys.stderr)
        files.append({"blob": name, "path": target, **info})
    return {"destination": root, "files": files, "total_bytes": sum(f["size"] for f in files)}


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: pull_data.py <params.json>", file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        params = json.load(f)
    try:
        manifest = run(params)
    except (PullError, KeyError, OSError) as exc:
        message = str(exc) if isinstance(exc, PullError) else f"{type(exc).__name__}: {exc}"
        message = redact(message, str(params.get("container_url") or ""))
        print(f"pull_data: {message}", file=sys.stderr)
        return 1
    with open("manifest.json", "w") as f:
        json.dump(manifest, f, indent=1)
    print(
        json.dumps(
            {
                "destination": manifest["destination"],
                "files": len(manifest["files"]),
                "total_bytes": manifest["total_bytes"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
