"""The ``nishati`` command in-process, as the fixture ``cli``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from tests.client.support import Cli


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    """The command in-process; the structlog configuration it makes is undone after."""
    configured = structlog.is_configured()
    yield Cli(capsys)
    if not configured:
        structlog.reset_defaults()
