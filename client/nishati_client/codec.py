"""Between this package's frozen dataclasses and anchorpy's untyped values."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

from solders.pubkey import Pubkey
from solders.signature import Signature

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


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data: keys as base58, byte arrays as hex, dataclasses (this
    package's and anchorpy's decoded types) as dicts; integers stay integers (the chain holds
    no floats; the oracle's answers do, for coordinates, angles and skill, and they stay floats)."""
    if isinstance(value, Pubkey | Signature):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list | tuple):
        if value and all(type(v) is int and 0 <= v <= 255 for v in value):
            return bytes(value).hex()
        return [plain(v) for v in value]
    raise TypeError(f"no JSON form for {type(value).__name__}")
