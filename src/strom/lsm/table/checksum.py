"""Masked CRC-32C, as LevelDB stores it in log records and block trailers.

Masking (rotate right 15, add a constant) keeps a CRC computed over bytes that themselves contain CRCs from
degenerating. The hardware-accelerated ``crc32c`` package does the arithmetic.
"""

from __future__ import annotations

from crc32c import crc32c

__all__ = ["crc32c", "mask", "masked_crc"]

_MASK_DELTA = 0xA282EAD8


def mask(crc: int) -> int:
    """Return the stored form of ``crc``."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def masked_crc(data: bytes, seed: int = 0) -> int:
    """Masked CRC-32C of ``data``, continuing from ``seed`` (an unmasked CRC)."""
    return mask(crc32c(data, seed))
