"""``python -m nishati_client.cli``, as the ``nishati`` console script."""

from nishati_client.cli import main

main()
