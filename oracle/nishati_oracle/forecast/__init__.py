"""Forecasts: each home's PV system, the weather over it, the PV model, what its meter teaches,
the rounds that forecast every home and score the forecasts (``service``), and the advice."""
