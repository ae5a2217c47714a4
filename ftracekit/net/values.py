"""Numbers as the kernel prints them, parsed column-wise: funcgraph-args values and event fields.

What the kernel prints (``kernel/trace/trace_btf.c``, ``print_function_args``, 6.15+;
``lib/vsprintf.c``):

* funcgraph-args: ``name=value`` pairs separated by ``", "``, at most 6 argument words then
  ``...``. Pointers are ``0x%lx`` (raw, never hashed); enums and signed ints decimal; unsigned
  ints hex from 6.17 (decimal before, so ``err=4294967277`` on some kernels); a struct passed by
  value ``(STRUCT)[0x…:0x…]``; an argument of a type BTF cannot print ``?0x…``.
* trace events: the event's own ``print fmt``; pointers through ``%p`` print 16 hex digits
  without ``0x`` — the raw address with ``options/hash-ptr`` 0, else a per-boot hash whose top 32
  bits are zero (``ptr_to_id`` masks the siphash to 32 bits), so a kernel address
  (``ffff…``) and a hash are told apart by their value.

Everything here works on whole columns: the text is regex-matched once per distinct value
(pandas string methods; pyarrow's when installed) and the digits are turned into integers with
numpy over byte matrices, never with ``int(x, 16)`` per row.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = ["strings", "hex_to_u64", "dec_to_i64", "typed_column", "extract_arg", "arg_series"]

_HEX_LUT = np.zeros(256, dtype=np.uint64)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX_LUT[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX_LUT[_c] = 10 + _i

_RX_HEX = r"^(?:\?)?0[xX]([0-9a-fA-F]{1,16})$"
_RX_DEC = r"^(-?)([0-9]{1,20})$"
_RX_BARE_HEX = r"^([0-9a-fA-F]{16})$"


def strings(values: object) -> pd.Series:
    """A pandas string Series (pyarrow-backed when pyarrow is installed: its regex kernels work
    on whole columns)."""
    try:
        import pyarrow  # noqa: F401
        dtype = "string[pyarrow]"
    except ImportError:  # pragma: no cover - pyarrow is optional
        dtype = "string"
    return pd.Series(values, dtype=dtype) if not isinstance(values, pd.Series) else values.astype(dtype)


def _byte_matrix(digits: pd.Series, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Digits (str, NA → empty) as a right-aligned ``(n, width)`` uint8 matrix of characters,
    with ``0`` bytes on the left, and the length of each."""
    raw = digits.fillna("").to_numpy(dtype=object)
    b = np.array(raw, dtype=f"S{width}") if len(raw) else np.zeros(0, dtype=f"S{width}")
    m = b.view(np.uint8).reshape(len(b), width)
    n = (m != 0).sum(axis=1)
    # right-align: numpy's S dtype pads on the right; shift each row by width - n
    shift = width - n
    if len(m) and shift.any():
        cols = np.arange(width)[None, :] - shift[:, None]
        ok = cols >= 0
        m = np.where(ok, np.take_along_axis(m, np.maximum(cols, 0), axis=1), 0).astype(np.uint8)
    return m, n


def hex_to_u64(digits: pd.Series) -> np.ndarray:
    """Hex digit strings (no ``0x``, ≤ 16 digits; NA → 0) → uint64, column-wise."""
    m, _ = _byte_matrix(digits, 16)
    out = np.zeros(len(m), dtype=np.uint64)
    four = np.uint64(4)
    for j in range(16):
        out = (out << four) | _HEX_LUT[m[:, j]]
    return out


def dec_to_i64(sign: pd.Series, digits: pd.Series) -> np.ndarray:
    """Decimal digit strings (≤ 20 digits) with an optional ``-`` sign → int64 (values above
    2**63 wrap to their two's complement, as the kernel's unsigned long does), column-wise."""
    m, _ = _byte_matrix(digits, 20)
    d = np.where(m >= 48, m - 48, 0).astype(np.uint64)
    out = np.zeros(len(m), dtype=np.uint64)
    ten = np.uint64(10)
    with np.errstate(over="ignore"):
        for j in range(20):
            out = out * ten + d[:, j]
        neg = (sign.fillna("") == "-").to_numpy(dtype=bool)
        out[neg] = (~out[neg]) + np.uint64(1)
    return out.view(np.int64)


def typed_column(text: pd.Series, *, bare_hex: bool = True) -> pd.Series:
    """Values as printed → the narrowest fitting type for the whole column.

    * all decimal (NA allowed) → nullable ``Int64``;
    * (``bare_hex``) exactly 16 hex digits throughout, as ``%p`` prints → nullable ``UInt64``;
    * all ``0x…``/``?0x…`` hex or decimal → nullable ``UInt64`` (negative decimals as their
      64-bit two's complement);
    * anything else → the text (pandas string).
    """
    s = strings(text)
    present = s.notna().to_numpy(dtype=bool)
    hexm = s.str.extract(_RX_HEX, expand=False)
    decm = s.str.extract(_RX_DEC, expand=True)
    is_hex = hexm.notna().to_numpy(dtype=bool)
    is_dec = decm[1].notna().to_numpy(dtype=bool)
    if not present.any():
        return pd.Series(pd.array([pd.NA] * len(s), dtype="Int64"), index=text.index)
    if bare_hex:
        bare = s.str.extract(_RX_BARE_HEX, expand=False)
        is_bare = bare.notna().to_numpy(dtype=bool)
        if (is_bare | ~present).all():
            # a %p column: 16 hex digits throughout (even a hash that happens to be all digits)
            return pd.Series(pd.arrays.IntegerArray(hex_to_u64(bare), ~present), index=text.index)
    if (is_dec | ~present).all():
        v = dec_to_i64(decm[0], decm[1])
        return pd.Series(pd.arrays.IntegerArray(v, ~is_dec), index=text.index)
    if (is_dec | is_hex | ~present).all():
        v = np.zeros(len(s), dtype=np.uint64)
        if is_hex.any():
            v[is_hex] = hex_to_u64(hexm[is_hex])
        if is_dec.any():
            v[is_dec] = dec_to_i64(decm[0][is_dec], decm[1][is_dec]).view(np.uint64)
        return pd.Series(pd.arrays.IntegerArray(v, ~present), index=text.index)
    return pd.Series(s.to_numpy(dtype=object), index=text.index, dtype="string")


def extract_arg(texts: pd.Series, name: str) -> pd.Series:
    """The printed value of argument ``name`` in funcgraph-args texts (NA where absent)."""
    rx = r"(?:^|, )" + re.escape(name) + r"=([^,]*)"
    return strings(texts).str.extract(rx, expand=False)


def arg_series(args: pd.Series, name: str) -> pd.Series:
    """Argument ``name`` of every call as a typed Series (see :func:`typed_column`), from the
    calls table's categorical ``args`` column: each distinct text is parsed once and the
    values are spread to the calls through the category codes."""
    cat = args.astype("category") if not isinstance(args.dtype, pd.CategoricalDtype) else args
    cats = pd.Series(cat.cat.categories.to_numpy(dtype=object))
    per_cat = typed_column(extract_arg(cats, name), bare_hex=False)
    codes = cat.cat.codes.to_numpy()
    has = codes >= 0
    take = np.where(has, codes, 0)
    vals = per_cat.array
    if len(vals) == 0:
        return pd.Series(pd.array([pd.NA] * len(args), dtype="Int64"), index=args.index, name=name)
    out = vals.take(take)
    if isinstance(out, pd.arrays.IntegerArray):
        mask = out._mask | ~has       # (the mask array is its own copy after take)
        out = type(out)(out._data, mask)
    else:
        out = pd.array(np.where(has, out.to_numpy(dtype=object, na_value=None), None), dtype="string")
    return pd.Series(out, index=args.index, name=name)


def arg_names(args: pd.Series) -> list[str]:
    """The argument names that occur in a calls table's ``args`` column, sorted."""
    cat = args.astype("category") if not isinstance(args.dtype, pd.CategoricalDtype) else args
    cats = strings(pd.Series(cat.cat.categories.to_numpy(dtype=object)))
    found = cats.str.extractall(r"(?:^|, )(\w+)=")
    return sorted(set(found[0].dropna().tolist())) if len(found) else []
