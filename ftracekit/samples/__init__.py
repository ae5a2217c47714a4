"""Real function_graph traces bundled with ftracekit, for demos, examples and tests.

>>> import ftracekit, ftracekit.samples
>>> ftracekit.samples.names()
>>> trace = ftracekit.load(ftracekit.samples.path("netlink_dump"))

Each sample is a text file (optionally ``.xz``) captured on a real Debian kernel; a sidecar
``NAME.json`` (when present) says how it was recorded.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError

__all__ = ["names", "path", "DIR"]

DIR = Path(__file__).parent
_SUFFIXES = (".txt", ".txt.xz", ".txt.gz")


def names() -> list[str]:
    """Names of the bundled samples."""
    out = []
    for p in sorted(DIR.iterdir()):
        for suf in _SUFFIXES:
            if p.name.endswith(suf):
                out.append(p.name[: -len(suf)])
    return out


def path(name: str) -> Path:
    """Path of the bundled sample ``name`` (see :func:`names`)."""
    for suf in _SUFFIXES:
        p = DIR / f"{name}{suf}"
        if p.exists():
            return p
    import difflib

    close = difflib.get_close_matches(name, names(), n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else f"; have: {', '.join(names())}"
    raise InputError(f"no bundled sample {name!r}{hint}")
