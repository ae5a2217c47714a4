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

__all__ = ["strings", "to_arrow", "fixed_hex_after", "word_after", "named_pointer", "rx_extract", "rx_replace", "hex_to_u64", "dec_to_i64", "typed_column",
           "extract_arg", "arg_series", "arg_names"]

_HEX_LUT = np.zeros(256, dtype=np.uint64)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX_LUT[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX_LUT[_c] = 10 + _i

_RX_HEX = r"^\??0[xX]([0-9a-fA-F]{1,16})$"
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


_RX_GROUP = re.compile(r"(?<!\\)\((?!\?)")


def _arrow_strings(s: pd.Series):  # -> pyarrow.Array | None
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pyarrow is optional
        return None
    if hasattr(s.array, "__arrow_array__"):
        # already Arrow-backed (pandas' str dtype with pyarrow): no copy of the strings
        got = s.array.__arrow_array__()
        if isinstance(got, pa.ChunkedArray):
            got = got.combine_chunks() if got.num_chunks != 1 else got.chunk(0)
        if pa.types.is_string(got.type) or pa.types.is_large_string(got.type):
            return got.cast(pa.large_string()) if got.type != pa.large_string() else got
    v = s.to_numpy(dtype=object, na_value=None) if not isinstance(s.dtype, np.dtype) \
        else s.to_numpy(dtype=object)
    return pa.array(v, type=pa.large_string(), from_pandas=True)


to_arrow = _arrow_strings


def rx_extract(values: pd.Series | None, pattern: str, expand: bool = False,
               arrow: object = None) -> pd.Series | pd.DataFrame:
    """Like ``values.str.extract(pattern)`` (columns 0…k−1, missing where no match; object
    columns), run by pyarrow's RE2 kernel over the whole column when pyarrow is installed
    (pandas' own extract loops in Python per row); patterns RE2 cannot run fall back to pandas.
    ``arrow``: ``values`` already converted with :func:`to_arrow` (convert once, match often)."""
    if values is None:                 # (only the Arrow array: the result has a RangeIndex)
        s = pd.Series(arrow.to_numpy(zero_copy_only=False), dtype=object) if arrow is None \
            else None
    else:
        s = values if isinstance(values, pd.Series) else pd.Series(values)
    arr = arrow if arrow is not None else _arrow_strings(s)
    index = s.index if s is not None else pd.RangeIndex(len(arr))
    if arr is not None:
        import pyarrow as pa
        import pyarrow.compute as pc

        k = [0]

        def name(_m: re.Match[str]) -> str:
            k[0] += 1
            return f"(?P<g{k[0] - 1}>"

        named = _RX_GROUP.sub(name, pattern)
        try:
            got = pc.extract_regex(arr, named)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            got = None
        if got is not None:
            cols = {}
            valid = got.is_valid()
            for i in range(k[0]):
                f = pc.if_else(valid, pc.struct_field(got, [i]), pa.scalar(None, pa.large_string()))
                cols[i] = f.to_numpy(zero_copy_only=False)
            # (object columns: pandas 3 would otherwise infer its str dtype, a copy per column)
            df = pd.DataFrame({i: pd.Series(c, index=index, dtype=object)
                               for i, c in cols.items()}, index=index)
            return df if expand or k[0] != 1 else df[0]
    if s is None:
        s = pd.Series(arr.to_numpy(zero_copy_only=False), dtype=object)
    return strings(s).str.extract(pattern, expand=expand)


def rx_replace(values: pd.Series, pattern: str, repl: str) -> pd.Series:
    """``values.str.replace(pattern, repl, regex=True)`` over the whole column (pyarrow's RE2
    when installed; ``repl`` uses ``\\1`` for groups)."""
    arr = _arrow_strings(values)
    if arr is not None:
        import pyarrow.compute as pc

        out = pc.replace_substring_regex(arr, pattern, repl)
        return pd.Series(out.to_numpy(zero_copy_only=False), index=values.index, dtype=object)
    return strings(values).str.replace(pattern, repl, regex=True)


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


def _arrow_bytes(arr):
    """``(arr, offsets, data)``: a pyarrow string array as large strings without nulls (empty
    strings instead) or offset, its int64 offsets and its byte buffer as numpy arrays."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = arr.cast(pa.large_string()) if arr.type != pa.large_string() else arr
    if arr.offset or arr.null_count:
        arr = pc.if_else(arr.is_valid(), arr, pa.scalar("", pa.large_string()))
        arr = pa.concat_arrays([arr]) if arr.offset else arr
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=len(arr) + 1)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return arr, offsets, data


def _find(arr, marker: str) -> np.ndarray:
    """Byte position of the first ``marker`` in each string (−1 where there is none)."""
    import pyarrow.compute as pc

    return pc.find_substring(arr, marker).to_numpy(zero_copy_only=False).astype(np.int64)


#: Rows per step of the SWAR readers below: their temporaries (a few arrays of 8-byte words)
#: stay in the CPU caches instead of streaming 80 MB arrays per step through memory.
_CHUNK = 1 << 16


def _chunks(n: int):
    for lo in range(0, n, _CHUNK):
        yield lo, min(lo + _CHUNK, n)


def _words_of(data: np.ndarray) -> np.ndarray:
    """Every 8-byte little-endian word of ``data`` (word i = bytes i … i+7), a view."""
    return np.ndarray((max(len(data) - 7, 0),), dtype="<u8", buffer=data, offset=0,
                      strides=(1,))


class _Finder:
    """Byte position of the first ``marker`` in the strings at given rows (−1: none).

    Where the caller passes a guess per row (``≥ 0``: where the marker should be, as in an
    event's fixed format; ``−2``: the row cannot hold it; ``−1``: unknown) the guess is checked
    by comparing the marker's bytes in place (one 8-byte word per row) and only the other rows
    are searched. The search is pyarrow's, over just the span of strings a chunk of rows covers
    when the rows increase and are dense (the common case), else over a copy of their strings."""

    def __init__(self, arr, marker: str, offsets: np.ndarray, words: np.ndarray) -> None:
        self.arr, self.marker = arr, marker
        self.offsets, self.words = offsets, words
        m = marker.encode()
        self.mlen = len(m)
        self.mword = np.uint64(int.from_bytes(m[:8].ljust(8, b"\0"), "little"))
        self.mmask = np.uint64((1 << (8 * min(len(m), 8))) - 1)

    def __call__(self, r: np.ndarray, guess: np.ndarray | None = None) -> np.ndarray:
        if guess is None or self.mlen > 8:
            return self._search(r)
        pos = np.full(len(r), -1, dtype=np.int64)
        miss = guess != -2
        g = np.flatnonzero(guess >= 0)
        if len(g):
            at = self.offsets[r[g]] + guess[g]
            fits = at + self.mlen <= self.offsets[r[g] + 1]
            w = self.words[np.where(fits, np.minimum(at, len(self.words) - 1), 0)]
            hit = g[fits & ((w & self.mmask) == self.mword)]
            pos[hit] = guess[hit]
            miss[hit] = False
        m = np.flatnonzero(miss)
        if len(m):
            pos[m] = self._search(r[m])
        return pos

    def _search(self, r: np.ndarray) -> np.ndarray:
        if not len(r):
            return np.zeros(0, dtype=np.int64)
        if r[-1] - r[0] < 4 * len(r) and (len(r) < 2 or bool((r[1:] >= r[:-1]).all())):
            lo = int(r[0])
            return _find(self.arr.slice(lo, int(r[-1]) - lo + 1), self.marker)[r - lo]
        import pyarrow as pa                      # (scattered rows: just their strings)

        return _find(self.arr.take(pa.array(r)), self.marker)


def _column_scan(arr, marker: str, rows: np.ndarray | None):
    """What the column readers below start from: ``(arr, offsets, data, find, idx, words)`` —
    the array as large strings, its offsets and bytes (padded when tiny, so two-word reads
    fit), a :class:`_Finder` of ``marker``, the rows to read (``rows``, or all) and the 8-byte
    words of ``data``."""
    arr, offsets, data = _arrow_bytes(arr)
    if len(data) < 16:
        data = np.concatenate([data, np.full(16, 32, dtype=np.uint8)])
    idx = np.arange(len(arr)) if rows is None else np.asarray(rows)
    if idx.dtype.kind not in "iu":
        idx = idx.astype(np.int64)
    words = _words_of(data)
    return arr, offsets, data, _Finder(arr, marker, offsets, words), idx, words


def fixed_hex_after(arr, marker: str, rows: np.ndarray | None = None,
                    guess: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(values, ok)``: the 16 hex digits right after ``marker`` (an optional ``0x`` skipped)
    in each string of a pyarrow string array (or in the strings at positions ``rows`` only: no
    copy of a subset), read straight from Arrow's byte buffer as two 8-byte words per row
    (SWAR) — ``%p``/``%px`` print exactly 16 digits, so no regex is needed. ``ok`` is False
    where the marker is missing, the digits are not all hex or a longer run of hex digits (not
    a ``%p`` value) follows. ``guess``: where the marker should be in each row (see
    :class:`_Finder`), to spare the search."""
    arr, offsets, data, find, idx, words = _column_scan(arr, marker, rows)
    n, last = len(idx), len(data) - 1
    vals = np.zeros(n, dtype=np.uint64)
    ok_all = np.zeros(n, dtype=bool)
    for lo, hi in _chunks(n):
        r = idx[lo:hi]
        pos = find(r, None if guess is None else guess[lo:hi])
        found = pos >= 0
        start = offsets[r] + np.where(found, pos, 0) + len(marker)
        end = offsets[r + 1]
        has0x = found & (end - start >= 2)
        s0 = np.minimum(start, max(last - 1, 0))
        has0x &= (data[s0] == 48) & ((data[s0 + 1] | 32) == 120) if len(data) > 1 else False
        start = start + 2 * has0x
        ok = found & (end - start >= 16)
        sg = np.where(ok, start, 0)
        h, ok_hi = _hex8(words[sg])
        lw, ok_lo = _hex8(words[sg + 8])
        ok &= ok_hi & ok_lo
        after = sg + 16
        nxt = np.where(after < end, data[np.minimum(after, last)], 32)
        nl = nxt | 32
        ok &= ~(((nxt >= 48) & (nxt <= 57)) | ((nl >= 97) & (nl <= 102)))
        vals[lo:hi] = np.where(ok, (h << np.uint64(32)) | lw, 0)
        ok_all[lo:hi] = ok
    return vals, ok_all


def named_pointer(arr, part: str) -> tuple[np.ndarray, np.ndarray]:
    """The value of the first argument whose name contains ``part`` in funcgraph-args texts
    (``name=0x%lx, …``), for the common case read column-wise (SWAR): that argument is named
    exactly ``part``, comes first or after ``", "``, and holds ``0x`` and 16 hex digits (a
    kernel pointer). Returns ``(values, state)``: state 1 where read, 0 where no argument name
    can contain ``part`` (it occurs nowhere), −1 where the caller must look with a regex
    (another name holding ``part``, fewer digits, anything but ``,`` or the end after
    them…)."""
    arr, offsets, data = _arrow_bytes(arr)
    anywhere = _find(arr, part)
    at = _find(arr, part + "=0x")
    vals, ok = fixed_hex_after(arr, part + "=0x", guess=np.where(at >= 0, at, -2))
    end = offsets[:-1] + at + len(part) + 3 + 16          # (just after the 16 digits)
    if len(data):
        nxt = np.where(end < offsets[1:], data[np.clip(end, 0, len(data) - 1)], 44)
        ok &= nxt == 44                                   # "," or the end of the text
    lead = at >= 2
    b1 = np.zeros(len(at), dtype=np.uint8)
    b2 = np.zeros(len(at), dtype=np.uint8)
    if lead.any():
        q = offsets[:-1][lead] + at[lead]
        b1[lead], b2[lead] = data[q - 2], data[q - 1]
    ok &= (at >= 0) & (at == anywhere) & ((at == 0) | ((b1 == 44) & (b2 == 32)))
    state = np.where(anywhere < 0, 0, np.where(ok, 1, -1)).astype(np.int8)
    return np.where(ok, vals, np.uint64(0)), state


_B01 = np.uint64(0x0101010101010101)
_B7F = np.uint64(0x7F7F7F7F7F7F7F7F)
_B80 = np.uint64(0x8080808080808080)
_B0F = np.uint64(0x0F0F0F0F0F0F0F0F)


def _bytes_in(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """0x80 in each byte of ``x`` (high bits clear) that lies in ``[lo, hi]``."""
    return (x + _B01 * np.uint64(0x80 - lo)) & ~(x + _B01 * np.uint64(0x7F - hi)) & _B80


def _hex8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, ok) of 8 hex digits held in uint64 words (first digit in the low byte)."""
    x = w & _B7F
    ok = ((_bytes_in(x, 0x30, 0x39) | _bytes_in(x | (_B01 * np.uint64(0x20)), 0x61, 0x66))
          & ~w) == _B80
    v = (w & _B0F) + np.uint64(9) * ((w >> np.uint64(6)) & _B01)    # each byte: its nibble
    t = (((v & _B0F) << np.uint64(4)) | (v >> np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    u = ((t << np.uint64(8)) | (t >> np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    return ((u << np.uint64(16)) | (u >> np.uint64(32))) & np.uint64(0xFFFFFFFF), ok


_WS = (9, 10, 12, 13, 32)           # RE2's \s (the regex kernels run RE2)


def _first_low_byte(w: np.ndarray) -> np.ndarray:
    """Index (0-8) of the first byte below 0x21 (space, control) of each uint64 word."""
    x = w & _B7F
    low = _bytes_in(x, 0, 0x20) & ~w                 # (bytes ≥ 0x80 are not)
    first = low & (~low + np.uint64(1))
    return np.where(low == 0, 8, np.bitwise_count(first - np.uint64(1)) >> 3).astype(np.int64)


_MIX1 = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xC2B2AE3D27D4EB4F)


def _factorize_first(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, first)``: dense codes of ``h`` and the position of each code's first row."""
    codes, _uniq = pd.factorize(h)
    if not len(codes):
        return codes, np.zeros(0, dtype=np.int64)
    # factorize numbers the values in order of appearance: a row is its code's first exactly
    # where its code exceeds every code before it
    top = np.maximum.accumulate(codes)
    return codes, np.flatnonzero(np.r_[True, codes[1:] > top[:-1]])


def word_after(arr, marker: str, rows: np.ndarray | None = None,
               guess: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""``rx_extract(…, r"(?:^|\s)MARKER(\S+)")`` for short words (≤ 15 bytes, e.g. ``dev=``'s
    interface names), column-wise on a pyarrow string array (or on its strings at positions
    ``rows``): the first ``marker`` of each string, preceded by the start or whitespace, and
    the bytes up to the next whitespace (two 8-byte words per row, SWAR). Rows this cannot
    decide (no whitespace before the first marker, longer words, control bytes) go to the regex.

    Returns ``(codes, words)`` as a categorical: ``words`` (object array of the distinct
    words, sorted) at ``codes`` (int32; −1 where there is no match) — the few distinct words
    are made once, never one string per row. ``guess``: where the marker should be in each
    row (see :class:`_Finder`), to spare the search."""
    import pyarrow as pa

    arr, offsets, data, find, idx, words = _column_scan(arr, marker, rows)
    n, last = len(idx), len(data) - 1
    codes_out = np.full(n, -1, dtype=np.int32)
    undecided = np.zeros(n, dtype=bool)
    seen: dict[tuple[int, int], int] = {}             # (word 1, word 2) → code
    for lo, hi in _chunks(n):
        r = idx[lo:hi]
        pos = find(r, None if guess is None else guess[lo:hi])
        found = pos >= 0
        s0 = offsets[r]
        p = s0 + np.where(found, pos, 0)
        end = offsets[r + 1]
        before = np.where(p > s0, data[np.clip(p - 1, 0, max(last, 0))] if len(data) else 32, 32)
        ok = found & np.isin(before, _WS)
        a = p + len(marker)
        # two words from the marker on, read in place; rows too close to the buffer's end for
        # that go to the regex
        room = a + 16 <= len(data)
        ok &= room
        ar = np.where(room, a, 0)
        w1, w2 = words[ar], words[ar + 8]
        i1, i2 = _first_low_byte(w1), _first_low_byte(w2)
        length = np.minimum(np.where(i1 < 8, i1, 8 + i2), end - a)
        stop_at = a + length
        stop = data[np.clip(stop_at, 0, max(last, 0))] if len(data) else np.zeros(len(r), np.uint8)
        ok &= (length >= 1) & (length <= 15) & (np.isin(stop, _WS) | (stop_at == end))
        undecided[lo:hi] = found & ~ok
        if not ok.any():
            continue
        w1 = w1[ok] & _LOW_BYTES[np.minimum(length[ok], 8)]
        w2 = w2[ok] & _LOW_BYTES[np.clip(length[ok] - 8, 0, 8)]
        # one hash of both words, factorized once; a row whose words differ from its code's
        # first row (a hash collision) is decided by the regex
        pair, first = _factorize_first(w1 * _MIX1 ^ (w2 * _MIX2 + (w2 >> np.uint64(29))))
        same = (w1 == w1[first][pair]) & (w2 == w2[first][pair])
        glob = np.array([seen.setdefault((int(w1[f]), int(w2[f])), len(seen)) for f in first],
                        dtype=np.int64)
        rows_ok = lo + np.flatnonzero(ok)
        codes_out[rows_ok[same]] = glob[pair[same]]
        undecided[rows_ok[~same]] = True
    names = [(w1.to_bytes(8, "little") + w2.to_bytes(8, "little"))
             .rstrip(b"\0").decode("utf-8", "replace") for (w1, w2) in seen]
    rest = np.flatnonzero(undecided)
    if len(rest):
        got = rx_extract(pd.Series(arr.take(pa.array(idx[rest])).to_numpy(zero_copy_only=False),
                                   dtype=object),
                         r"(?:^|\s)" + re.escape(marker) + r"(\S+)").to_numpy(dtype=object)
        hit = pd.notna(got)
        rc, ru = pd.factorize(got[hit])
        codes_out[rest[hit]] = rc + len(names)
        names = names + list(ru)
    # the same word may have come both ways: one code per distinct word, in sorted order
    uniq = sorted(set(names))                        # (Python strings: NULs are kept)
    at = {w: i for i, w in enumerate(uniq)}
    remap = np.array([at[w] for w in names], dtype=np.int64)
    live = codes_out >= 0
    codes_out[live] = remap[codes_out[live]]
    return codes_out, np.array(uniq, dtype=object)


_LOW_BYTES = np.array([(1 << (8 * i)) - 1 for i in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


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
    s = text
    present = s.notna().to_numpy(dtype=bool)
    if not present.any():
        return pd.Series(pd.array([pd.NA] * len(s), dtype="Int64"), index=text.index)
    arr = to_arrow(s)
    if arr is None:                            # pragma: no cover - without pyarrow
        return _typed_pandas(s, present, bare_hex)
    import pyarrow as pa
    import pyarrow.compute as pc

    def match(rx: str) -> np.ndarray:
        return pc.fill_null(pc.match_substring_regex(arr, rx), False).to_numpy(zero_copy_only=False)

    def obj(a: object) -> pd.Series:
        return pd.Series(a.to_numpy(zero_copy_only=False), dtype=object)

    if bare_hex:
        is_bare = match(_RX_BARE_HEX)
        if (is_bare | ~present).all():
            # a %p column: 16 hex digits throughout (even a hash that happens to be all digits)
            # (read as words from the byte buffer: fixed_hex_after with no marker)
            return pd.Series(pd.arrays.IntegerArray(fixed_hex_after(arr, "")[0], ~present),
                             index=text.index)
    is_dec = match(_RX_DEC)
    if (is_dec | ~present).all():
        try:                                   # (Arrow's own parser: int64 range)
            v = pc.fill_null(pc.cast(arr, pa.int64()), 0).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            neg = pd.Series(np.where(match(r"^-"), "-", ""), dtype=object)
            v = dec_to_i64(neg, obj(pc.replace_substring_regex(arr, r"^-", "")))
        return pd.Series(pd.arrays.IntegerArray(v, ~is_dec), index=text.index)
    is_hex = match(_RX_HEX)
    if (is_dec | is_hex | ~present).all():
        v = np.zeros(len(s), dtype=np.uint64)
        digits = obj(pc.replace_substring_regex(arr, r"^\??0[xX]", ""))
        if is_hex.any():
            v[is_hex] = hex_to_u64(digits[is_hex])
        if is_dec.any():
            neg = pd.Series(np.where(match(r"^-"), "-", ""), dtype=object)
            v[is_dec] = dec_to_i64(neg[is_dec], obj(pc.replace_substring_regex(arr, r"^-", ""))
                                   [is_dec]).view(np.uint64)
        return pd.Series(pd.arrays.IntegerArray(v, ~present), index=text.index)
    return pd.Series(s.to_numpy(dtype=object, na_value=None) if not isinstance(s.dtype, np.dtype)
                     else s.to_numpy(dtype=object), index=text.index, dtype="string")


def _typed_pandas(s: pd.Series, present: np.ndarray, bare_hex: bool) -> pd.Series:
    """:func:`typed_column` with pandas' own (per-row) regex, where pyarrow is missing."""
    t = strings(s)
    if bare_hex:
        bare = t.str.extract(_RX_BARE_HEX, expand=False)
        if (bare.notna().to_numpy(dtype=bool) | ~present).all():
            return pd.Series(pd.arrays.IntegerArray(hex_to_u64(bare), ~present), index=s.index)
    hexm = t.str.extract(_RX_HEX, expand=False)
    decm = t.str.extract(_RX_DEC, expand=True)
    is_hex = hexm.notna().to_numpy(dtype=bool)
    is_dec = decm[1].notna().to_numpy(dtype=bool)
    if (is_dec | ~present).all():
        return pd.Series(pd.arrays.IntegerArray(dec_to_i64(decm[0], decm[1]), ~is_dec),
                         index=s.index)
    if (is_dec | is_hex | ~present).all():
        v = np.zeros(len(s), dtype=np.uint64)
        v[is_hex] = hex_to_u64(hexm[is_hex])
        v[is_dec] = dec_to_i64(decm[0][is_dec], decm[1][is_dec]).view(np.uint64)
        return pd.Series(pd.arrays.IntegerArray(v, ~present), index=s.index)
    return pd.Series(t.to_numpy(dtype=object, na_value=None), index=s.index, dtype="string")


def extract_arg(texts: pd.Series, name: str) -> pd.Series:
    """The printed value of argument ``name`` in funcgraph-args texts (NA where absent)."""
    rx = r"(?:^|, )" + re.escape(name) + r"=([^,]*)"
    return rx_extract(texts, rx)


def _arg_values(texts: pd.Series, name: str) -> pd.Series:
    """``typed_column(extract_arg(texts, name), bare_hex=False)``, with the common case —
    the argument printed as a kernel pointer, ``name=0x`` and 16 digits — read column-wise
    (:func:`named_pointer`) and the regex run only over the other texts that name it."""
    ta = to_arrow(texts) if re.fullmatch(r"\w+", name) else None
    if ta is not None and len(texts):
        vals, state = named_pointer(ta, name)
        rest = np.flatnonzero(state < 0)
        if (state == 1).any():
            mask = state != 1
            if not len(rest):
                return pd.Series(pd.arrays.IntegerArray(vals, mask))
            sub = typed_column(extract_arg(texts.iloc[rest].reset_index(drop=True), name),
                               bare_hex=False)
            if isinstance(sub.array, pd.arrays.IntegerArray):
                # (decimals among pointers: their two's complement, as the column-wide read)
                vals[rest] = sub.array._data.astype(np.int64).view(np.uint64) \
                    if sub.dtype == "Int64" else sub.array._data
                mask[rest] = sub.array._mask
                return pd.Series(pd.arrays.IntegerArray(vals, mask))
    return typed_column(extract_arg(texts, name), bare_hex=False)


def arg_series(args: pd.Series, name: str) -> pd.Series:
    """Argument ``name`` of every call as a typed Series (see :func:`typed_column`), from the
    calls table's categorical ``args`` column: each distinct text is parsed once and the
    values are spread to the calls through the category codes."""
    cat = args.astype("category") if not isinstance(args.dtype, pd.CategoricalDtype) else args
    # (the categories as they are: Arrow-backed strings convert without a copy)
    cats = pd.Series(cat.cat.categories, copy=False).reset_index(drop=True)
    per_cat = _arg_values(cats, name)
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
