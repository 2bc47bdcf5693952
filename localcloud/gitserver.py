"""A read-only git server over HTTPS for the bare repositories under `<state>/git/`.

It speaks git's smart HTTP protocol by running `git http-backend` (CGI) per request, so clones,
shallow fetches and fetches of a pinned commit work as they do against a real forge. Pushes are
refused. The certificate is the ARM emulator's server certificate (127.0.0.1 and localhost,
signed by `<state>/arm/ca.pem`), so one CA file is all a client has to trust.

The instance's fault plan (localcloud.faults, published by the ARM emulator at
`<state>/faults/plan.json`) applies to every request before it is served, under the keys
`GIT GET` and `GIT POST`: a 500/503 answer, a reset before the answer or after its headers and
half its body, or a delay.

    python -m localcloud.gitserver --state-dir DIR [--port 8445]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from localcloud.arm.certs import ensure_certificates, server_ssl_context
from localcloud.arm.fault_layer import reset_connection
from localcloud.cut_answer import answer_then_cut
from localcloud.faults import Fault, PlanFollower, plan_file

log = logging.getLogger("localcloud.gitserver")

DEFAULT_PORT = 8445
REQUEST_TIMEOUT = 300

# Config handed to every git http-backend run: serve every repo (no git-daemon-export-ok
# files), let a client fetch a pinned commit by its id, and accept repos whatever their owner.
_GIT_CONFIG = {
    "uploadpack.allowAnySHA1InWant": "true",
    "safe.directory": "*",
    "http.receivepack": "false",
}


def git_root(state_dir: Path) -> Path:
    return state_dir / "git"


def _cgi_environment(request: web.Request, root: Path, body_length: int) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": str(root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": request.method,
        "PATH_INFO": request.path,
        "QUERY_STRING": request.query_string,
        "CONTENT_TYPE": request.headers.get("Content-Type", ""),
        "CONTENT_LENGTH": str(body_length),
        "REMOTE_ADDR": request.remote or "",
        "SERVER_PROTOCOL": f"HTTP/{request.version.major}.{request.version.minor}",
        "GIT_CONFIG_COUNT": str(len(_GIT_CONFIG)),
    }
    for i, (key, value) in enumerate(_GIT_CONFIG.items()):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    for header in ("Content-Encoding", "Git-Protocol", "Accept"):
        if header in request.headers:
            env["HTTP_" + header.upper().replace("-", "_")] = request.headers[header]
    return env


def _parse_cgi_output(output: bytes) -> web.Response:
    head, separator, body = output.partition(b"\r\n\r\n")
    if not separator:
        head, _, body = output.partition(b"\n\n")
    status = 200
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            headers[name.strip()] = value.strip()
    return web.Response(status=status, body=body, headers=headers)


_SERVER_ERRORS = {500: "Internal Server Error", 503: "Service Unavailable"}


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def build_app(root: Path, faults: PlanFollower | None = None) -> web.Application:
    """The aiohttp application serving every bare repository below `root` read-only, with the
    GIT rules of the plan `faults` follows."""

    async def serve(request: web.Request) -> web.StreamResponse:
        fault = faults.decide(f"GIT {request.method.upper()}") if faults else None
        if fault is not None:
            log.info("fault %s for %s %s", fault.kind, request.method, request.path)
            if fault.kind == "delay":
                await asyncio.sleep(fault.seconds)
            elif fault.when == "before":
                return _refusal(request, fault)
        response = await answer(request)
        if fault is not None and fault.kind == "reset":  # after: cut mid-body
            body = response.body if isinstance(response.body, bytes) else b""
            headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
            return await answer_then_cut(request, response.status, headers, len(body), _one(body))
        return response

    async def answer(request: web.Request) -> web.Response:
        if "receive-pack" in request.path or "receive-pack" in request.query_string:
            return web.Response(status=403, text="this server is read-only\n")
        body = await request.read()
        process = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            env=_cgi_environment(request, root, len(body)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            output, errors = await asyncio.wait_for(process.communicate(body), REQUEST_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            return web.Response(status=504)
        if process.returncode != 0 and not output:
            log.warning("git http-backend failed for %s: %s", request.path, errors[-300:])
            return web.Response(status=500)
        response = _parse_cgi_output(output)
        log.info("%s %s %d", request.method, request.path, response.status)
        return response

    app = web.Application(client_max_size=1024**3)
    app.router.add_route("*", "/{tail:.*}", serve)
    return app


def _refusal(request: web.Request, fault: Fault) -> web.Response:
    if fault.kind == "reset":
        reset_connection(request)
        return web.Response(status=500)  # never reaches the client: the connection is gone
    return web.Response(status=fault.status, text=f"{_SERVER_ERRORS[fault.status]}\n")


async def serve_forever(state_dir: Path, port: int, bind: str = "127.0.0.1") -> None:
    """Serve `<state>/git/` on https://bind:port until cancelled."""
    if shutil.which("git") is None:
        raise RuntimeError("git is not installed")
    root = git_root(state_dir)
    root.mkdir(parents=True, exist_ok=True)
    context = server_ssl_context(ensure_certificates(state_dir / "arm"))
    # Compressed request bodies go to http-backend as they came: it inflates them itself.
    faults = PlanFollower(plan_file(state_dir), "git")
    runner = web.AppRunner(build_app(root, faults), access_log=None, auto_decompress=False)
    await runner.setup()
    await web.TCPSite(runner, bind, port, ssl_context=context).start()
    log.info("git server on https://%s:%d/ serving %s", bind, port, root)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud.gitserver", description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--bind", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(args.state_dir.resolve(), args.port, args.bind))
    return 0


if __name__ == "__main__":
    sys.exit(main())
