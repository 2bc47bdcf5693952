"""The local Functions host: loads the app, runs queue and timer listeners and the HTTP front."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from aiohttp import web

from localcloud.funchost.appindex import FunctionSpec, index_functions, load_app
from localcloud.funchost.easyauth import AuthSettings, EasyAuth
from localcloud.funchost.hostconfig import HostConfig, load_host_config, load_local_settings
from localcloud.funchost.hostkeys import HostKeys
from localcloud.funchost.http import HttpFrontend
from localcloud.funchost.invoke import Invoker, worker_thread_count
from localcloud.funchost.queues import QueueListener
from localcloud.funchost.storage import QueueClients
from localcloud.funchost.timers import TimerListener

log = logging.getLogger("localcloud.funchost")

RUNNABLE = ("queueTrigger", "timerTrigger", "httpTrigger")


class FunctionsHost:
    """Everything `func start` does for labimage, in one asyncio loop."""

    def __init__(
        self,
        app_dir: Path,
        port: int,
        bind: str = "127.0.0.1",
        secrets_dir: Path | None = None,
        auth_settings: Path | None = None,
    ) -> None:
        """`secrets_dir` keeps the host keys and the sign-in key (default: <app_dir>/.funchost);
        `auth_settings` is an authsettingsV2 JSON document (none: App Service auth is off)."""
        self.app_dir = app_dir.resolve()
        self.port = port
        self.bind = bind
        self.secrets_dir = secrets_dir or self.app_dir / ".funchost"
        easy_auth = EasyAuth.in_folder(AuthSettings.from_file(auth_settings), self.secrets_dir)
        if easy_auth.settings.enabled:
            os.environ["WEBSITE_AUTH_ENABLED"] = "True"  # as App Service tells the app
        load_local_settings(self.app_dir)
        self.config: HostConfig = load_host_config(self.app_dir)
        self.specs: list[FunctionSpec] = index_functions(load_app(self.app_dir))
        for spec in self.specs:
            if spec.trigger_type not in RUNNABLE:
                log.warning("function %s: %s is not supported here", spec.name, spec.trigger_type)
        self._clients = QueueClients()
        options = self.config.queues
        queue_specs = [s for s in self.specs if s.trigger_type == "queueTrigger"]
        self._invoker = Invoker(
            str(self.app_dir),
            self._clients,
            options.message_encoding,
            max_threads=worker_thread_count(),
            on_finished=self._wake_listeners,
        )
        self._queues = [
            QueueListener(s, options, self._clients, self._invoker) for s in queue_specs
        ]
        self._timers = [
            TimerListener(s, self._invoker) for s in self.specs if s.trigger_type == "timerTrigger"
        ]
        self._http = HttpFrontend(
            self.specs,
            self._invoker,
            self.config.route_prefix,
            HostKeys.in_folder(self.secrets_dir),
            easy_auth,
        )

    def _wake_listeners(self) -> None:
        # A function may have just sent to another function's queue (a pipeline stage hop).
        for listener in self._queues:
            listener.wake()

    async def serve(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then let messages in flight finish and close everything."""
        runner = web.AppRunner(self._http.application(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.bind, self.port).start()
        tasks = [asyncio.create_task(q.run()) for q in self._queues]
        tasks += [asyncio.create_task(t.run()) for t in self._timers]
        self._print_banner()
        try:
            await stop.wait()
        finally:
            log.info("Host stopping")
            await asyncio.gather(*(q.stop() for q in self._queues))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runner.cleanup()
            await self._clients.close()
            self._invoker.shutdown()

    def _print_banner(self) -> None:
        base = f"http://{self.bind}:{self.port}"
        urls = self._http.urls(base)
        log.info("Functions:")
        for spec in self.specs:
            where = {
                "queueTrigger": f"queue {spec.queue_name}",
                "timerTrigger": f"schedule {spec.schedule}",
                "httpTrigger": f"[{','.join(spec.methods)}] {urls.get(spec.name, '')}",
            }.get(spec.trigger_type, spec.trigger_type)
            log.info("  %s: %s %s", spec.name, spec.trigger_type, where)
        log.info("Host started on %s", base)


async def run_until_signalled(host: FunctionsHost) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await host.serve(stop)
