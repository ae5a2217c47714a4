"""Byte-level building blocks of the vectorised scanner (:mod:`._fastparse`): uint64 words that
hold 8 text bytes (first byte in the low bits), SWAR digit/zero tests, and hashing.
"""

from __future__ import annotations

import numpy as np

_U = np.uint64

_ALL = (1 << 64) - 1
_LOW = np.array([(1 << (8 * i)) - 1 if i < 8 else _ALL for i in range(9)], dtype=np.uint64)
_HIGH80 = np.array([sum(0x80 << (8 * (7 - j)) for j in range(i)) for i in range(9)],
                   dtype=np.uint64)          # 0x80 in the top i bytes
_LOW80 = np.array([sum(0x80 << (8 * j) for j in range(i)) for i in range(9)],
                  dtype=np.uint64)           # 0x80 in the low i bytes
_POW10 = np.array([10.0 ** i for i in range(16)], dtype=np.float64)
_SP = _U(0x2020202020202020)
_DOTS = _U(0x2E2E2E2E2E2E2E2E)
_X7F = _U(0x7F7F7F7F7F7F7F7F)
_X80 = _U(0x8080808080808080)
_X0F = _U(0x0F0F0F0F0F0F0F0F)
_XF0 = _U(0xF0F0F0F0F0F0F0F0)
_X30 = _U(0x3030303030303030)
_X06 = _U(0x0606060606060606)
_X10 = _U(0x1010101010101010)
_M1 = _U(0x000000FF000000FF)
_C1 = _U(100 + (1000000 << 32))
_C2 = _U(1 + (10000 << 32))
_H1 = _U(0x9E3779B97F4A7C15)
_H2 = _U(0xBF58476D1CE4E5B9)
_H3 = _U(0x94D049BB133111EB)
_MULTS = [_U(x) for x in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                          0xD6E8FEB86659FD93, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB,
                          0x8EBC6AF09C88C6E3, 0x589965CC75374CC3)]
_X46 = _U(0x4646464646464646)
_HMUL = [_U(x) for x in (0xD6E8FEB86659FD93, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB,
                         0x8EBC6AF09C88C6E3, 0x589965CC75374CC3, 0x1D8E4E27C47D124F)]
# _BODY_MASKS[j][n]: the bytes of word j that belong to a body of n (≤ 32) bytes.
_BODY_MASKS = [np.array([int(_LOW[min(max(n - 8 * j, 0), 8)]) for n in range(33)], dtype=np.uint64)
               for j in range(4)]
_MARK_OK = np.zeros(256, dtype=bool)
for _c in b" +!#*@$":
    _MARK_OK[_c] = True


# ---------------------------------------------------------------------------------------------
# SWAR helpers (uint64 words hold 8 text bytes, first byte in the low bits)

def _zero_bytes(z: np.ndarray) -> np.ndarray:
    """0x80 in every byte of ``z`` that is zero (exact)."""
    t = (z & _X7F) + _X7F
    return ~(t | z | _X7F)


def _digit_bytes(w: np.ndarray) -> np.ndarray:
    """0x80 in every byte of ``w`` that is an ASCII digit."""
    hi = _zero_bytes((w & _XF0) ^ _X30)
    lo = _zero_bytes(((w & _X0F) + _X06) & _X10)
    return hi & lo


def _ctz_bytes(x: np.ndarray) -> np.ndarray:
    """Index of the lowest byte with its 0x80 bit set in ``x`` (8 when none)."""
    low = x & (~x + _U(1))
    return (np.bitwise_count(low - _U(1)) >> 3).astype(np.int64)


def _swar8(v: np.ndarray) -> np.ndarray:
    """Eight decimal digit values (0-9, first digit in the low byte) → their integer value."""
    v = v * _U(10) + (v >> _U(8))
    return (((v & _M1) * _C1) + (((v >> _U(16)) & _M1) * _C2)) >> _U(32)


def _hash_mix(h: np.ndarray, w: np.ndarray) -> np.ndarray:
    h = (h ^ w) * _H2
    return h ^ (h >> _U(31))
