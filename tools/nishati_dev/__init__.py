"""Local development tooling: the local stack (``nishati-dev stack``) and the processes it runs
(the local chain and broker, the Daraja simulator, the oracle), simulated meters, the local
market day and the demo. Product packages (``nishati_client``, ``nishati_oracle``) never import
it; it needs the repository on disk (the built program, the test keys)."""
