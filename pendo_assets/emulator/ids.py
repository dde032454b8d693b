"""Deterministic hashing helpers: seeds, fast per-index hashes and Pendo-looking ids."""

from __future__ import annotations

import base64
import hashlib
import random

_MASK = (1 << 64) - 1


def digest(*parts: object) -> bytes:
    """A stable 20-byte digest of ``parts`` (``hash()`` is salted per process, this is not)."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=20).digest()


def seed_of(*parts: object) -> int:
    return int.from_bytes(digest(*parts)[:8], "big")


def rng_for(*parts: object) -> random.Random:
    """A ``random.Random`` owned by one (seed, source, app, day, ...) cell of the data."""
    return random.Random(seed_of(*parts))


def mix64(x: int) -> int:
    """splitmix64 finaliser: a cheap, well-spread hash for per-visitor attributes.

    Used instead of a ``Random`` per visitor because streaming a million visitors must stay
    above 100k rows/s.
    """
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def pendo_id(*parts: object) -> str:
    """A 27-character base64url id like Pendo's tag ids (``aJ0KOADQZVL5h9zQhiQ0q26PNTM``)."""
    return base64.urlsafe_b64encode(digest(*parts)).decode().rstrip("=")


def short_token(h: int, length: int = 11) -> str:
    """A base64url token from a 64-bit hash (anonymous visitor ids)."""
    return base64.urlsafe_b64encode(h.to_bytes(8, "big")).decode().rstrip("=")[:length]
