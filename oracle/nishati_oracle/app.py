"""The oracle service: FastAPI under uvicorn, wired here once.

The lifespan starts the services (:func:`nishati_oracle.services.start`) inside one
``AsyncExitStack``, which closes them in reverse. Routes live with their domain
(``readings.http``, ``trading.api``, ``http.probes``) and take what they need as dependencies
(``http.deps``). Every error is answered in the one shape of ``http.errors``: its handlers, and
each domain's for its refusals, are installed here; each router caps its routes' bodies
(``http.limits``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from nishati_client.chain import LiteSvmChain, RpcChain
from nishati_oracle import services
from nishati_oracle.accounts import errors as accounts_errors
from nishati_oracle.accounts import http as accounts_http
from nishati_oracle.core.settings import OracleSettings
from nishati_oracle.forecast import api as forecast_api
from nishati_oracle.households import api as households_api
from nishati_oracle.households.offers import OfferRefused
from nishati_oracle.http import auth, docs, errors, probes, webapp
from nishati_oracle.operators import api as operators_api
from nishati_oracle.readings import http as readings_http
from nishati_oracle.trading import api as trading_api
from nishati_oracle.trading.desk import TradeRefused


def create_app(settings: OracleSettings, chain: RpcChain | LiteSvmChain | None = None) -> FastAPI:
    """The app; tests pass a LiteSVM chain, the service an RPC one made from the settings."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.services = await services.start(settings, chain, stack)
            yield

    app = FastAPI(
        title="Nishati oracle",
        version="0.1.0",
        description=errors.__doc__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    auth.install(app)
    app.state.signatures = auth.SignatureWindow(settings.http.signature_window_secs)
    app.add_exception_handler(TradeRefused, trading_api.refused)
    app.add_exception_handler(accounts_errors.SignInRefused, accounts_errors.refused)
    app.include_router(probes.router)
    app.include_router(readings_http.router)
    app.include_router(trading_api.orders)
    app.include_router(trading_api.lookups)
    app.include_router(trading_api.callbacks)
    app.include_router(trading_api.operators)
    app.include_router(accounts_http.auth)
    app.include_router(accounts_http.api_key_routes)
    forecast_api.install(app)
    app.add_exception_handler(OfferRefused, households_api.refused)
    app.include_router(households_api.router)
    app.include_router(households_api.changes)
    app.add_exception_handler(operators_api.InstallersUnlisted, operators_api.unlisted)
    app.include_router(operators_api.router)
    docs.install(app)
    webapp.install(app, settings.http.web_dir)
    app.add_middleware(readings_http.ReadingsRoute)
    # Added last, so outermost: it answers for the readings route too.
    app.add_middleware(errors.Failures)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = readings_http.document_readings(
                errors.without_validation_errors(generate())
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
