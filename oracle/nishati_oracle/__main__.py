"""``python -m nishati_oracle``: the ``nishati-oracle`` command (``cli.py``); without a command
it serves the oracle under uvicorn, configured by the environment."""

from __future__ import annotations

from nishati_oracle.cli import main

if __name__ == "__main__":
    main()
