"""Fixtures of the client's tests."""

from __future__ import annotations

import pytest

from tests.client.support import Cli


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)
