"""Oracle fixtures: a Mosquitto broker for the session, and one of its own for a test that
restarts it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nishati_dev.broker import Mosquitto


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A broker shared by the session; tests keep apart by topic root and client id."""
    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker for one test, which may restart or stop it."""
    with Mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


# The oracle core's fixtures live beside the broker's.
from tests.oracle.world import database_url, postgres_base, world  # noqa: E402, F401
