"""The operator's pages' data: the market's settings and installers, its meters and the
readings refused, its trades by state (``api.py`` the routes, ``reads.py`` the queries)."""
