"""Numbers written by people and other systems: the digits 0-9 only."""

from __future__ import annotations


def ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more of the digits 0-9. ``str.isdigit`` alone also takes
    Arabic-Indic, full-width and superscript digits, which ``int`` reads as numbers (or, for
    superscripts, refuses with a ``ValueError``)."""
    return text.isascii() and text.isdigit()
