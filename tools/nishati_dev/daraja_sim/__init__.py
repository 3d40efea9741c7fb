"""A Daraja (Safaricom M-Pesa API) simulator: the far side of our M-Pesa integration, written
from Daraja's documentation (``/work/shared/daraja.md``) and independent of the oracle's client.

``python -m nishati_dev.daraja_sim`` serves it (settings ``DARAJA_SIM_*``, see ``settings``);
``nishati_dev.processes.DarajaSimService`` runs it as a child process; ``scenarios`` documents
which phone numbers end how, and the rules ``POST /simulator/scenario`` takes.
"""
