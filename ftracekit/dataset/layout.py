"""The on-disk form of a dataset: folders, the manifest, the Parquet schemas, the extra.

A dataset is a folder::

    DATASET/
      ftracekit-dataset.json                          the manifest (the commit point)
      calls/host=a/kernel=6.1/trace=t1/part-<token>-00000.parquet
      events/host=a/kernel=6.1/trace=t1/part-<token>-00000.parquet

Folders are one level per tag (``key=value``, hive style), then ``trace=<input name>``. Each
Parquet file holds consecutive windows of one input (line order, hence time order) and the
manifest lists, per file, its rows and its ``start_s`` range, so a query for some tags or a
time window reads only those files. The tag values are also columns of the files.

Readers take the file list from the manifest, never from the folder: files of an
interrupted ``--append`` are not listed and not read, and a new dataset is written under
``DATASET.partial-<pid>`` and renamed into place at the end.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from .._version import __version__
from ..errors import InputError

__all__ = ["MANIFEST", "FORMAT", "FORMAT_VERSION", "CALL_SCHEMA", "EVENT_SCHEMA",
           "read_manifest", "write_manifest", "new_manifest", "need", "check_tags", "TAG_RE"]

MANIFEST = "ftracekit-dataset.json"
FORMAT = "ftracekit-dataset"
#: Bumped whenever files or manifest change incompatibly.
FORMAT_VERSION = 1

#: Columns of the ``calls`` files (before the tag columns), with their Arrow types; the
#: meaning and units are those of :class:`ftracekit.Trace` ``.calls``; ``call`` is its index
#: (ids count per input: a call is (tags, ``trace``, ``call``)).
CALL_SCHEMA = [("call", "int64"), ("func", "string"), ("module", "string"), ("pid", "int32"),
               ("comm", "string"), ("cpu", "int16"), ("exit_cpu", "int16"), ("depth", "int16"),
               ("parent", "int64"), ("root", "int64"), ("start_s", "float64"),
               ("end_s", "float64"), ("duration_us", "float64"), ("self_us", "float64"),
               ("n_children", "int32"), ("status", "string"), ("in_irq", "bool_"),
               ("retval", "int64"), ("line", "int64"), ("args", "string")]
#: Columns of the ``events`` files (before the tag columns), as :class:`ftracekit.Trace`
#: ``.events``.
EVENT_SCHEMA = [("line", "int64"), ("cpu", "int16"), ("pid", "int32"), ("comm", "string"),
                ("ts_s", "float64"), ("event", "string"), ("text", "string"),
                ("call", "int64"), ("lat_flags", "string")]

TAG_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = {name for name, _ in CALL_SCHEMA} | {name for name, _ in EVENT_SCHEMA} | {"trace"}


def need(module: str) -> Any:
    """Import an optional dependency of datasets, or say which extra provides it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise InputError(f"datasets need {module.split('.')[0]}: "
                         "pip install 'ftracekit[scale]'") from err


def check_tags(tags: dict[str, str]) -> dict[str, str]:
    """Tags as given by the user, checked: keys are identifiers other than column names,
    values are non-empty and fit in a folder name."""
    out = {}
    for key, value in tags.items():
        if not TAG_RE.match(key) or key in _RESERVED:
            raise InputError(f"tag {key!r}: a tag name is a word (letters, digits, _) that is "
                             "not a column name")
        value = str(value)
        if not value or "/" in value or value in (".", "..") or "\0" in value:
            raise InputError(f"tag {key}={value!r}: the value must be non-empty, without '/'")
        out[key] = value
    return out


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of the dataset ``path``, checked for format and version."""
    root = os.fspath(path)
    where = os.path.join(root, MANIFEST)
    if not os.path.isdir(root):
        raise InputError(f"{root}: no such dataset folder")
    try:
        with open(where, encoding="utf-8") as f:
            man = json.load(f)
    except FileNotFoundError:
        raise InputError(f"{root}: not an ftracekit dataset (no {MANIFEST}; an interrupted "
                         "conversion leaves only a *.partial-* folder)") from None
    except (OSError, ValueError) as err:
        raise InputError(f"{where}: unreadable dataset manifest: {err}") from None
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        raise InputError(f"{where}: not an ftracekit dataset manifest")
    if man.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{root}: written by ftracekit {man.get('ftracekit_version', '?')} in "
                         f"dataset format {man.get('format_version')!r}; this ftracekit "
                         f"{__version__} reads format {FORMAT_VERSION}: convert the traces again")
    return man


def write_manifest(root: str, man: dict[str, Any]) -> None:
    """Write the manifest atomically (a temporary file renamed over the old one)."""
    tmp = os.path.join(root, f".{MANIFEST}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(man, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(root, MANIFEST))


def new_manifest(tag_keys: list[str]) -> dict[str, Any]:
    """An empty manifest for a dataset whose inputs carry the tags ``tag_keys``."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "ftracekit_version": __version__,
            "tag_keys": list(tag_keys), "inputs": []}
