"""The metadata file that travels next to a recorded trace text.

``trace.txt`` → ``trace.json`` (``x.txt.gz`` → ``x.json``; a name without ``.txt`` gets ``.json``
appended). The recorder writes it (settings, kernel, per-CPU ``stats`` before/after, lost-event
counts); :func:`ftracekit.load` reads it, when present, into ``Trace.meta["recording"]``.

A JSON file of the same name is not necessarily ours (another tool's metadata, a test
harness's notes): only an object with the keys the recorder always writes
(:data:`RECORDER_KEYS`: ``ftracekit_version`` and a ``settings`` object, see
``Recorder._describe``) is taken as a sidecar; :func:`find_sidecar` says why another was not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["sidecar_path", "read_sidecar", "find_sidecar", "is_recorder_sidecar",
           "write_sidecar", "RECORDER_KEYS"]

_TEXT_SUFFIXES = (".txt.gz", ".txt.xz", ".txt")


def sidecar_path(text_path: str | os.PathLike[str]) -> Path:
    """Where the metadata of the trace text at ``text_path`` lives."""
    p = Path(text_path)
    name = p.name
    for suffix in _TEXT_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return p.with_name(name[: -len(suffix)] + ".json")
    return p.with_name(name + ".json")


#: Keys every sidecar written by the recorder has (``Recorder._describe``).
RECORDER_KEYS = ("ftracekit_version", "settings")


def is_recorder_sidecar(data: Any) -> bool:
    """Whether ``data`` (a parsed JSON value) is what the recorder writes."""
    return (isinstance(data, dict) and all(k in data for k in RECORDER_KEYS)
            and isinstance(data["settings"], dict))


def find_sidecar(text_path: str | os.PathLike[str]) -> tuple[dict[str, Any] | None, str | None]:
    """``(content, note)``: the recorder's sidecar of ``text_path`` and None, or None and —
    when a file of that name exists but is not ours (not JSON, not an object, or without
    :data:`RECORDER_KEYS`) — a one-line note saying it was ignored and why."""
    path = sidecar_path(text_path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None, None
    except OSError as err:
        return None, f"{path.name} next to the trace ignored: cannot read it ({err.strerror or err})"
    except ValueError:
        return None, f"{path.name} next to the trace ignored: not JSON"
    if is_recorder_sidecar(data):
        return data, None
    missing = [k for k in RECORDER_KEYS if not isinstance(data, dict) or k not in data]
    why = (f"no {' or '.join(missing)}" if missing else "'settings' is not an object")
    return None, (f"{path.name} next to the trace ignored: not written by ftracekit's "
                  f"recorder ({why})")


def read_sidecar(text_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The recorder's sidecar of ``text_path``, or None when there is none or the file of
    that name is not one (see :func:`find_sidecar`)."""
    return find_sidecar(text_path)[0]


def write_sidecar(text_path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write ``data`` as the sidecar of ``text_path`` (atomically) and return its path."""
    path = sidecar_path(text_path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    os.replace(tmp, path)
    return path
