"""What a household sees of itself: its meter's readings by day, its balance in energy and
money, its trades, its meter's health (``api`` the routes, ``reads`` the queries)."""
