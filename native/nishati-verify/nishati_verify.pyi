"""Ed25519 verification exactly as Solana's Ed25519 program decides it (``verify_strict``)."""

from collections.abc import Sequence

def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s over ``message``; ``False`` for a key or
    signature of the wrong length. Releases the GIL while it checks."""

def verify_batch(items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """:func:`verify`'s verdict on each ``(public_key, signature, message)``, in order, most of
    them checked in one batch. Releases the GIL while it checks."""
