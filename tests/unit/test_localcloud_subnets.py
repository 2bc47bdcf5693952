"""Each localcloud instance gets its own sandbox address range."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from localcloud.sandbox.subnets import (
    DEFAULT_SUBNET,
    POOL,
    allocate_subnet,
    choose_subnet,
    recorded_subnet,
)


def test_the_default_state_folder_keeps_the_documented_range(tmp_path: Path) -> None:
    default = tmp_path / ".localcloud"
    assert allocate_subnet(default, default, []) == ipaddress.IPv4Network("10.213.0.0/16")


def test_two_instances_get_different_ranges_and_keep_them(tmp_path: Path) -> None:
    default = tmp_path / ".localcloud"
    first, second = tmp_path / "make-up", tmp_path / "make-test"
    a = allocate_subnet(first, default, [])
    b = allocate_subnet(second, default, [first])
    assert not a.overlaps(b)
    for subnet in (a, b):
        assert subnet.subnet_of(POOL) and not subnet.overlaps(DEFAULT_SUBNET)
    # A later `up` of either reuses its recorded range.
    assert allocate_subnet(first, default, [second]) == a == recorded_subnet(first)
    assert allocate_subnet(second, default, [first]) == b


def test_a_range_another_instance_took_meanwhile_is_given_up(tmp_path: Path) -> None:
    default = tmp_path / ".localcloud"
    first, second = tmp_path / "one", tmp_path / "two"
    a = allocate_subnet(first, default, [])
    (second / "sandbox-subnet").parent.mkdir()
    (second / "sandbox-subnet").write_text(f"{a}\n")  # recorded while `first` was down
    b = allocate_subnet(second, default, [first])
    assert not b.overlaps(a) and recorded_subnet(second) == b


def test_the_choice_skips_taken_ranges_and_fails_when_none_is_left(tmp_path: Path) -> None:
    folder, default = tmp_path / "x", tmp_path / "default"
    first = choose_subnet(folder, default, [])
    assert choose_subnet(folder, default, []) == first  # the same folder, the same range
    assert not choose_subnet(folder, default, [first]).overlaps(first)
    with pytest.raises(ValueError, match="no free"):
        choose_subnet(folder, default, [POOL])
