"""The metadata file that travels next to a recorded trace text.

``trace.txt`` → ``trace.json`` (``x.txt.gz`` → ``x.json``; a name without ``.txt`` gets ``.json``
appended). The recorder writes it (settings, kernel, per-CPU ``stats`` before/after, lost-event
counts); :func:`ftracekit.load` reads it, when present, into ``Trace.meta["recording"]``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["sidecar_path", "read_sidecar", "write_sidecar"]

_TEXT_SUFFIXES = (".txt.gz", ".txt.xz", ".txt")


def sidecar_path(text_path: str | os.PathLike[str]) -> Path:
    """Where the metadata of the trace text at ``text_path`` lives."""
    p = Path(text_path)
    name = p.name
    for suffix in _TEXT_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return p.with_name(name[: -len(suffix)] + ".json")
    return p.with_name(name + ".json")


def read_sidecar(text_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar's content, or None when there is none or it is not a JSON object."""
    path = sidecar_path(text_path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_sidecar(text_path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write ``data`` as the sidecar of ``text_path`` (atomically) and return its path."""
    path = sidecar_path(text_path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    os.replace(tmp, path)
    return path
