"""``python -m nishati_oracle``: serves the oracle under uvicorn, configured by the environment.

Settings that are missing or wrong stop it before it starts: one line per problem on stderr,
naming the environment variable, and exit status 2.
"""

from __future__ import annotations

import sys

import uvicorn

from nishati_oracle.app import create_app
from nishati_oracle.core.logs import configure
from nishati_oracle.core.settings import SettingsError, load_settings

BAD_SETTINGS = 2


def main() -> None:
    configure()
    try:
        settings = load_settings()
        problems = settings.serving_problems()
    except SettingsError as error:
        problems = error.problems
    if problems:
        for problem in problems:
            print(f"nishati-oracle: {problem}", file=sys.stderr)
        sys.exit(BAD_SETTINGS)
    uvicorn.run(
        create_app(settings),
        host=settings.http.host,
        port=settings.http.port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
