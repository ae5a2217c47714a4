"""funcgraph-args on the vectorised path (:mod:`._fastparse`).

A body with arguments, ``netif_receive_skb(skb=0xff3c863e829a2800) {``, is looked up in the
body tables *without* them (``netif_receive_skb() {``): the distinct bodies stay few although
every argument text differs. The argument text (between the first ``(`` of the body and its
last ``)``, as the exact parser's greedy regex takes it) is kept per line. A line whose body
does not read back as a valid body without its arguments is left to the exact parser (the
lookup rejects it), so nothing is guessed here.
"""

from __future__ import annotations

import numpy as np

_OPEN, _CLOSE, _NL = 40, 41, 10


def ranges_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Byte indices of the concatenated ranges ``[starts[i], starts[i] + lengths[i])``."""
    lengths = lengths.astype(np.int64, copy=False)
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    offs = np.cumsum(lengths) - lengths
    return np.repeat(starts.astype(np.int64, copy=False) - offs, lengths) + np.arange(total)


def gather_texts(mem: bytes, buf: np.ndarray, lo: int, hi: int, a: np.ndarray, b: np.ndarray,
                 nl: np.ndarray) -> list[str]:
    """The texts ``mem[a:b]`` (decoded) of lines within ``mem[lo:hi]`` whose newlines are at
    ``nl``: sliced from the decoded span when it is ASCII (byte offsets are then character
    offsets), else gathered newline-separated and split."""
    if not len(a):
        return []
    if int(buf[lo:hi].max()) < 128:
        text = mem[lo:hi].decode("ascii")
        return [text[x:y] for x, y in zip((a - lo).tolist(), (b - lo).tolist())]
    seg_s = np.empty(2 * len(a), dtype=np.int64)
    seg_l = np.empty(2 * len(a), dtype=np.int64)
    seg_s[0::2], seg_s[1::2] = a, nl
    seg_l[0::2], seg_l[1::2] = b - a, 1
    out = buf[ranges_index(seg_s, seg_l)].tobytes().decode("utf-8", "replace").split("\n")
    out.pop()
    return out


def _paren_positions(buf: np.ndarray, lo: int, hi: int, code: int) -> np.ndarray:
    pos = np.flatnonzero(buf[lo:hi] == code)
    pos += lo
    return pos


def split_args(mem: bytes, buf: np.ndarray, bs: np.ndarray, e: np.ndarray, pad: bytes
               ) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray, list[str]] | None:
    """Bodies of lines ``[bs, e)`` (``e``: their newline) with the arguments taken out.

    Returns None when no body has arguments; else ``(bmem, bs2, blen2, rows, texts)``:
    ``bmem`` is ``mem`` followed by the argument-free bodies of the rows with arguments (each
    followed by its newline, as a body in ``mem`` is) and ``pad``; ``bs2``/``blen2`` locate
    every row's body in ``bmem``; ``rows`` are the rows with arguments and ``texts`` their
    argument texts. Rows whose ``(`` has no ``)`` after it get length 0 (rejected).
    """
    k = len(bs)
    if not k:
        return None
    lo, hi = int(bs.min()), int(e.max())
    opens = _paren_positions(buf, lo, hi, _OPEN)
    if not len(opens):
        return None
    nxt = buf[opens + 1]
    if not (nxt != _CLOSE).any():
        return None
    i = np.searchsorted(opens, bs)
    has = i < len(opens)
    p = opens[np.minimum(i, len(opens) - 1)]
    has &= p < e
    has &= buf[p + 1] != _CLOSE
    rows = np.flatnonzero(has)
    if not rows.size:
        return None
    p = p[rows]
    er = e[rows]
    closes = _paren_positions(buf, lo, hi, _CLOSE)
    if not len(closes):  # no ``)`` anywhere: every row with ``(`` is rejected
        closes = np.zeros(1, dtype=opens.dtype)
    j = np.searchsorted(closes, er) - 1
    q = closes[np.maximum(j, 0)]
    good = (j >= 0) & (q > p)
    q = np.where(good, q, p + 1)
    # argument-free bodies: [bs, p] + [q, e] (e is the newline)
    n_head = p + 1 - bs[rows]
    n_tail = er + 1 - q
    seg_start = np.empty(2 * len(rows), dtype=np.int64)
    seg_len = np.empty(2 * len(rows), dtype=np.int64)
    seg_start[0::2], seg_start[1::2] = bs[rows], q
    seg_len[0::2], seg_len[1::2] = n_head, n_tail
    canon = buf[ranges_index(seg_start, seg_len)].tobytes()
    base = len(mem)
    bmem = b"".join((mem, canon, pad))
    bs2 = bs.copy()
    blen2 = e - bs
    clen = n_head + n_tail
    bs2[rows] = base + np.cumsum(clen) - clen
    blen2[rows] = np.where(good, clen - 1, 0)
    # argument texts, one per row
    a0 = p + 1
    out = gather_texts(mem, buf, lo, hi, a0, np.where(good, q, a0), er)
    return bmem, bs2, blen2, rows, out
