"""``python -m nishati_dev.daraja_sim``: serves the simulator under uvicorn (``DARAJA_SIM_*``)."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from nishati_dev.daraja_sim.app import create_app
from nishati_dev.daraja_sim.settings import DarajaSimSettings


def main() -> None:
    try:
        settings = DarajaSimSettings()
    except ValidationError as e:
        sys.exit(f"nishati-daraja-sim: bad settings: {e.errors()[0]['msg']}")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
