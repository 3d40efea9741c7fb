"""``python -m nishati_oracle``: serves the oracle under uvicorn, configured by the environment."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from nishati_oracle.app import create_app
from nishati_oracle.core.logs import configure
from nishati_oracle.core.settings import OracleSettings


def main() -> None:
    configure()
    try:
        settings = OracleSettings()
    except ValidationError as e:
        sys.exit(f"nishati-oracle: bad settings: {e.errors()[0]['msg']}")
    if settings.market is None or settings.oracle_keypair is None:
        sys.exit("nishati-oracle: set NISHATI_MARKET and NISHATI_ORACLE_KEYPAIR")
    uvicorn.run(
        create_app(settings),
        host=settings.http.host,
        port=settings.http.port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
