"""Nishati client."""
