"""localcloud's App Service authentication: the settings it applies and the tokens it issues."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from localcloud.cli import main as localcloud_main
from localcloud.funchost.easyauth import AuthSettings, EasyAuth

REQUIRED = {
    "platform": {"enabled": True},
    "globalValidation": {
        "requireAuthentication": True,
        "unauthenticatedClientAction": "Return401",
        "excludedPaths": ["/api/openapi.json", "/api/automation/*"],
    },
}


def test_excluded_paths_are_exact_or_a_folder_with_a_trailing_star() -> None:
    settings = AuthSettings.from_json(REQUIRED)
    assert settings.excluded("/api/openapi.json")
    assert settings.excluded("/api/automation/builds/b1")
    assert not settings.excluded("/api/openapi.json/x")
    assert not settings.excluded("/api/automationx/builds")
    assert not settings.excluded("/api/builds")


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("Return401", 401),
        ("Return403", 403),
        ("RedirectToLoginPage", 302),
        ("AllowAnonymous", None),
    ],
)
def test_the_unauthenticated_action_is_applied(
    action: str, status: int | None, tmp_path: Path
) -> None:
    document = json.loads(json.dumps(REQUIRED))
    document["globalValidation"]["unauthenticatedClientAction"] = action
    auth = EasyAuth.in_folder(AuthSettings.from_json(document), tmp_path)
    assert auth.apply("/api/builds", {}).status == status
    assert auth.apply("/api/automation/builds", {}).status is None


def test_auth_off_passes_every_header_through_untouched(tmp_path: Path) -> None:
    auth = EasyAuth.in_folder(AuthSettings(), tmp_path)
    outcome = auth.apply("/api/builds", {"X-MS-CLIENT-PRINCIPAL": "forged"})
    assert outcome.status is None and outcome.headers == {"X-MS-CLIENT-PRINCIPAL": "forged"}


def test_the_token_command_signs_in_a_test_principal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = localcloud_main(
        [
            "token",
            "--state-dir",
            str(tmp_path),
            "--name",
            "ada@example.org",
            "--role",
            "labimage.admin",
        ]
    )
    assert code == 0
    token = capsys.readouterr().out.strip()
    auth = EasyAuth.in_folder(AuthSettings.from_json(REQUIRED), tmp_path / "funchost")
    outcome = auth.apply("/api/builds", {"Authorization": f"Bearer {token}"})
    assert outcome.status is None
    assert outcome.headers["X-MS-CLIENT-PRINCIPAL-NAME"] == "ada@example.org"
    principal = json.loads(base64.b64decode(outcome.headers["X-MS-CLIENT-PRINCIPAL"]))
    assert {"typ": "roles", "val": "labimage.admin"} in principal["claims"]
    assert (tmp_path / "funchost" / "signin-key").stat().st_mode & 0o077 == 0
