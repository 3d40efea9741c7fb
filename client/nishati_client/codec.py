"""Between this package's frozen dataclasses and anchorpy's untyped values."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

HASH_LEN = 32


def as_args(obj: Any) -> dict[str, object]:
    """A dataclass as the dict anchorpy encodes (``asdict`` would try to deep-copy Pubkeys)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def decoded_fields(cls: Any, decoded: object) -> dict[str, Any]:
    """The values of dataclass ``cls``'s fields (except ``address``) from a decoded account;
    byte arrays become ``bytes``."""
    values: dict[str, Any] = {}
    for field in fields(cls):
        if field.name == "address":
            continue
        value = getattr(decoded, field.name)
        values[field.name] = bytes(value) if isinstance(value, list) else value
    return values


def hash32(value: bytes, what: str) -> bytes:
    """``value`` if it is a 32-byte hash or commitment, else ``ValueError`` naming ``what``."""
    if len(value) != HASH_LEN:
        raise ValueError(f"{what} must be {HASH_LEN} bytes, not {len(value)}")
    return bytes(value)
