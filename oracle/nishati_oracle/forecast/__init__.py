"""Production forecasts: each home's PV system, the weather over it, and the PV model."""
