"""Load `function_app` from an app folder and describe its functions as the host needs them."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func

from localcloud.funchost.hostconfig import resolve_setting_refs

ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")


class AppLoadError(RuntimeError):
    """The function app cannot be loaded or one of its bindings cannot be resolved."""


@dataclass(frozen=True)
class QueueOutputSpec:
    param: str  # argument name, or "$return"
    queue_name: str
    connection: str  # the connection string itself, resolved from the app setting


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    trigger_type: str  # queueTrigger, timerTrigger, httpTrigger, or another type we do not run
    trigger_param: str
    user_function: Callable[..., Any]
    is_async: bool
    wants_context: bool
    queue_name: str | None = None
    connection: str | None = None  # resolved connection string for queue triggers
    schedule: str | None = None
    run_on_startup: bool = False
    route: str | None = None
    auth_level: str = "function"  # anonymous, function or admin (the host's default: function)
    methods: tuple[str, ...] = ALL_METHODS
    queue_outputs: tuple[QueueOutputSpec, ...] = field(default_factory=tuple)


def connection_string(setting: str | None) -> str:
    """The connection string a binding's `connection` names, looked up as the host does.

    An empty name means `AzureWebJobsStorage`; a name `X` is tried as `X`, then `AzureWebJobsX`.
    """
    names = [setting, f"AzureWebJobs{setting}"] if setting else ["AzureWebJobsStorage"]
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    raise AppLoadError(f"storage connection setting {names[0]} is not set")


def load_app(app_dir: Path) -> func.FunctionApp:
    """Import `function_app` from `app_dir` and return its FunctionApp, as the worker does."""
    if not (app_dir / "function_app.py").exists():
        raise AppLoadError(f"no function_app.py in {app_dir}")
    sys.path.insert(0, str(app_dir))
    try:
        module = importlib.import_module("function_app")
    except Exception as err:
        raise AppLoadError(f"importing {app_dir / 'function_app.py'} failed: {err!r}") from err
    app = getattr(module, "app", None)
    if not isinstance(app, func.FunctionApp):
        apps = [v for v in vars(module).values() if isinstance(v, func.FunctionApp)]
        if len(apps) != 1:
            raise AppLoadError("function_app.py defines no FunctionApp (expected `app`)")
        app = apps[0]
    return app


def _setting(binding: dict[str, Any], key: str) -> str:
    value = binding.get(key)
    if not isinstance(value, str) or not value:
        raise AppLoadError(f"binding {binding.get('name')} has no {key}")
    return resolve_setting_refs(value)


def describe_function(fn: Any) -> FunctionSpec:
    """One registered function as the host runs it (bindings resolved from app settings)."""
    name = fn.get_function_name()
    bindings = [b.get_dict_repr() for b in fn.get_bindings()]
    trigger = fn.get_trigger()
    if trigger is None:
        raise AppLoadError(f"function {name} has no trigger")
    raw = trigger.get_dict_repr()
    user_function = fn.get_user_function()
    params = inspect.signature(user_function).parameters
    kind = str(raw["type"])
    spec: dict[str, Any] = {}
    try:
        if kind == "queueTrigger":
            spec = {
                "queue_name": _setting(raw, "queueName"),
                "connection": connection_string(raw.get("connection")),
            }
        elif kind == "timerTrigger":
            spec = {
                "schedule": _setting(raw, "schedule"),
                "run_on_startup": bool(raw.get("runOnStartup")),
            }
        elif kind == "httpTrigger":
            methods = raw.get("methods") or ALL_METHODS
            level = raw.get("authLevel") or "function"
            spec = {
                "auth_level": str(getattr(level, "value", level)).lower(),
                "route": resolve_setting_refs(raw.get("route") or name),
                "methods": tuple(str(getattr(m, "value", m)).upper() for m in methods),
            }
        outputs = tuple(
            QueueOutputSpec(
                param=str(b["name"]),
                queue_name=_setting(b, "queueName"),
                connection=connection_string(b.get("connection")),
            )
            for b in bindings
            if b.get("type") == "queue"
        )
    except LookupError as err:
        raise AppLoadError(f"function {name}: {err}") from err
    return FunctionSpec(
        name=name,
        trigger_type=kind,
        trigger_param=str(raw["name"]),
        user_function=user_function,
        is_async=inspect.iscoroutinefunction(user_function),
        wants_context="context" in params,
        queue_outputs=outputs,
        **spec,
    )


def index_functions(app: func.FunctionApp) -> list[FunctionSpec]:
    """Every enabled function of the app with its bindings resolved from app settings.

    A function is left out when the app setting `AzureWebJobs.<name>.Disabled` is true, as on Azure.
    """
    specs = []
    for fn in app.get_functions():
        name = fn.get_function_name()
        disabled = os.environ.get(f"AzureWebJobs.{name}.Disabled", "").lower() in ("1", "true")
        if not disabled:
            specs.append(describe_function(fn))
    return specs
