"""What the tests stand on: chains, brokers, databases, the Daraja simulator and the oracle as
fixtures (registered for every test by ``tests/conftest.py``), and the worlds built of them."""
