"""``python -m nishati_dev.daraja_sim``: serves the simulator under uvicorn until Ctrl-C."""

from __future__ import annotations

from collections.abc import Sequence

from nishati_dev.daraja_sim.app import create_app
from nishati_dev.daraja_sim.settings import DarajaSimSettings
from nishati_dev.serving import serve_simulator

DESCRIPTION = """\
A Daraja (Safaricom M-Pesa API) simulator on loopback, for the oracle's simulator payments
(NISHATI_PAYMENTS=simulator, NISHATI_DARAJA_URL=<its URL>). The last two digits of a phone pick
an outcome (nishati_dev.daraja_sim.scenarios); /simulator/... steers and inspects it.

Settings come from DARAJA_SIM_* variables (docs/settings.md lists them); every default is a
published test value. It prints its URL once it serves.
"""


def main(argv: Sequence[str] | None = None) -> None:
    serve_simulator(
        module="daraja_sim",
        description=DESCRIPTION,
        name="Daraja simulator",
        env_prefix="DARAJA_SIM_",
        default_port=8089,
        settings=DarajaSimSettings,
        create_app=create_app,
        argv=argv,
    )


if __name__ == "__main__":
    main()
