"""`localcloud up --setting NAME=VALUE`: extra app settings for the Functions host."""

from __future__ import annotations

import pytest

from localcloud.cli import _extra_settings, parse_args


def test_settings_are_collected_and_values_may_hold_equals_signs() -> None:
    args = parse_args(["up", "--setting", "A=1", "--setting=CONN=Key=x;Endpoint=http://h/"])
    assert _extra_settings(args) == {"A": "1", "CONN": "Key=x;Endpoint=http://h/"}


def test_a_setting_without_a_name_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse_args(["up", "--setting", "=value"])
