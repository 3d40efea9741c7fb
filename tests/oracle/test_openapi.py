"""Schemathesis over the app's OpenAPI schema, in-process: generated requests, valid and not, to
every operation (trading included); each answer's status is one its entry lists, its body fits
the listed schema and content type, and none is a 5xx."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from anyio.from_thread import start_blocking_portal
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import LiteSvmChain
from nishati_client.program import NishatiClient
from nishati_dev.sandbox import Harness
from nishati_dev.settings import LocalChainSettings
from nishati_oracle.app import create_app
from nishati_oracle.core.settings import OracleSettings
from tests.harness.chain import PAYER_LAMPORTS
from tests.harness.oracle import CALLBACK_TOKEN, IN_PROCESS_TRADING, start_world

# Per operation, half valid and half not.
EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def oracle_schema(
    settings: LocalChainSettings, program_id: Pubkey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[schemathesis.BaseSchema]:
    """The app on its own chain and database; schemathesis runs its lifespan and its requests
    on an event loop of its own, where the app lives until the module's tests are done."""
    chain = LiteSvmChain(program_id, settings.program_so)
    payer = Keypair()
    chain.fund(payer.pubkey(), PAYER_LAMPORTS)
    harness = Harness(chain, payer, NishatiClient(chain, program_id), chain)
    directory: Path = tmp_path_factory.mktemp("openapi")
    database = f"sqlite+aiosqlite:///{directory / 'oracle.db'}"
    start = functools.partial(start_world, harness, database, directory, **IN_PROCESS_TRADING)
    with start_blocking_portal() as portal:
        world = portal.call(start)
    yield schemathesis.openapi.from_asgi("/openapi.json", world.app)
    shutdown_lifespans()


def operations() -> list[tuple[str, str]]:
    """(method, path) of every operation in the app's schema (the app needs no services to
    describe itself)."""
    paths = create_app(OracleSettings()).openapi()["paths"]
    return sorted((method.upper(), path) for path, ops in paths.items() for method in ops)


@pytest.mark.parametrize(("method", "path"), operations())
def test_the_app_keeps_its_openapi_contract(
    oracle_schema: schemathesis.BaseSchema, method: str, path: str
) -> None:
    operation = oracle_schema[path][method]
    # The callbacks' token is the real one, so that their bodies are read.
    fixed = {"token": CALLBACK_TOKEN} if "{token}" in path else None
    cases = st.one_of(
        *(
            operation.as_strategy(mode, path_parameters=fixed)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        )
    )

    @hypothesis.given(case=cases)
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[
            hypothesis.HealthCheck.too_slow,
            hypothesis.HealthCheck.filter_too_much,
        ],
    )
    def conforms(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(checks=checks)

    # /readyz's 503 NotReady is one of its documented answers: this app's Daraja is never
    # reached, so it is not ready.
    checks = [c for c in CHECKS if path != "/readyz" or c is not not_a_server_error]

    conforms()
