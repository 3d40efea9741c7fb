"""Nishati oracle."""
