"""Local development tooling: the local chain and broker, the Daraja simulator, simulated meters,
the local market day and the demo. Product packages (``nishati_client``, ``nishati_oracle``) never
import it; it needs the repository on disk (the built program, the test keys)."""
