"""A Daraja (Safaricom M-Pesa API) simulator: the far side of our M-Pesa integration, written
from Daraja's documentation (``/work/shared/daraja.md``) and independent of the oracle's client.

``python -m nishati_dev.daraja_sim`` serves it (settings ``DARAJA_SIM_*``, see ``settings``);
``launcher.running_daraja_sim`` runs it for tests; ``scenarios`` documents which phone numbers
end how, and the rules ``POST /simulator/scenario`` takes.
"""

from nishati_dev.daraja_sim.launcher import (
    DarajaSimProcess,
    running_daraja_sim,
    running_daraja_sim_async,
)
from nishati_dev.daraja_sim.settings import DarajaSimSettings

__all__ = [
    "DarajaSimProcess",
    "DarajaSimSettings",
    "running_daraja_sim",
    "running_daraja_sim_async",
]
