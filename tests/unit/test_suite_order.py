"""The suite's files run longest first (tests/conftest.py), which pytest-xdist must not undo."""

from __future__ import annotations

import pytest


def test_xdist_keeps_the_order_the_suite_gives_its_files(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.option.loadscopereorder is False
