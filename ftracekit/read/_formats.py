"""Event formats: ``events/SYSTEM/EVENT/format`` files, and rendering an event's payload as text.

The format file gives each field's offset, size and signedness in the payload, and the
``print fmt`` the kernel's text output uses; :class:`Renderer` follows its common conversions
so that events other than the function graph's read as in ``trace`` (comments).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np

from ..errors import InputError
from ._symbols import Symbols

__all__ = ["Field", "EventFormat", "parse_format", "FormatTable", "find_format", "Renderer"]


# ---------------------------------------------------------------------------------------------
# Formats

@dataclass(frozen=True)
class Field:
    name: str
    type: str
    offset: int
    size: int
    signed: bool


@dataclass
class EventFormat:
    system: str
    name: str
    id: int
    fields: dict[str, Field]
    print_fmt: str = ""

    def field(self, name: str) -> Field | None:
        return self.fields.get(name)


_RX_FIELD = re.compile(r"field:(?P<decl>[^;]+);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);"
                       r"(?:\s*signed:(?P<signed>\d+);)?")


def parse_format(text: str, system: str = "") -> EventFormat:
    """Parse an ``events/SYSTEM/EVENT/format`` file."""
    name = ""
    ev_id = -1
    fields: dict[str, Field] = {}
    print_fmt = ""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("name:"):
            name = s.split(":", 1)[1].strip()
        elif s.startswith("ID:"):
            ev_id = int(s.split(":", 1)[1])
        elif s.startswith("print fmt:"):
            print_fmt = s.split(":", 1)[1].strip()
        else:
            m = _RX_FIELD.search(s)
            if m:
                decl = m["decl"].strip()
                fname = re.sub(r"\[.*\]$", "", decl.split()[-1]).lstrip("*")
                ftype = decl[: decl.rfind(decl.split()[-1])].strip()
                fields[fname] = Field(fname, ftype + ("[]" if decl.endswith("]") else ""),
                                      int(m["off"]), int(m["size"]), m["signed"] == "1")
    if not name or ev_id < 0:
        raise InputError(f"not an event format file (no name/ID): {text[:60]!r}")
    return EventFormat(system, name, ev_id, fields, print_fmt)


_RX_ID = re.compile(r"^\s*ID:\s*(\d+)", re.M)
_RX_NAME = re.compile(r"^\s*name:\s*(\S+)", re.M)


class FormatTable(Mapping[int, EventFormat]):
    """Event formats by id, each parsed when first used: a ``trace.dat`` holds the formats of
    all ~1,500 events of the kernel (0.2 ms each to parse), a decode needs a few."""

    def __init__(self) -> None:
        self._text: dict[int, tuple[str, str]] = {}
        self._parsed: dict[int, EventFormat] = {}
        self._ids: dict[tuple[str, str], int] = {}

    def add(self, text: str, system: str) -> None:
        m_id, m_name = _RX_ID.search(text), _RX_NAME.search(text)
        if m_id is None or m_name is None:
            raise InputError(f"not an event format file (no name/ID): {text[:60]!r}")
        ev_id = int(m_id[1])
        self._text[ev_id] = (text, system)
        self._parsed.pop(ev_id, None)
        self._ids[(system, m_name[1])] = ev_id

    def __getitem__(self, ev_id: int) -> EventFormat:
        fmt = self._parsed.get(ev_id)
        if fmt is None:
            text, system = self._text[ev_id]
            fmt = self._parsed[ev_id] = parse_format(text, system)
        return fmt

    def __contains__(self, ev_id: object) -> bool:
        return ev_id in self._text

    def __iter__(self) -> Iterator[int]:
        return iter(self._text)

    def __len__(self) -> int:
        return len(self._text)

    def text(self, ev_id: int) -> tuple[str, str]:
        """The format file's text and the event's system."""
        return self._text[ev_id]

    def find(self, system: str, name: str) -> EventFormat | None:
        ev_id = self._ids.get((system, name))
        return None if ev_id is None else self[ev_id]


def find_format(formats: Mapping[int, EventFormat], system: str, name: str
                ) -> EventFormat | None:
    """The format of ``system/name`` in ``formats`` (a :class:`FormatTable` or a dict)."""
    if isinstance(formats, FormatTable):
        return formats.find(system, name)
    for fmt in formats.values():
        if (fmt.system, fmt.name) == (system, name):
            return fmt
    return None


# ---------------------------------------------------------------------------------------------
# Rendering other events as text (what the kernel would print in a comment)

_RX_SYMBOLIC = re.compile(r"__print_symbolic\(\s*REC->(\w+)\s*,(.*)\)\s*$", re.S)
_RX_PAIR = re.compile(r"\{\s*(-?\d+|0x[0-9a-fA-F]+)\s*,\s*\"([^\"]*)\"\s*\}")


def _split_args(s: str) -> list[str]:
    out, depth, cur, q = [], 0, [], False
    for ch in s:
        if ch == '"':
            q = not q
        if not q:
            if ch in "({[":
                depth += 1
            elif ch in ")}]":
                depth -= 1
            elif ch == "," and depth == 0:
                out.append("".join(cur).strip())
                cur = []
                continue
        cur.append(ch)
    if cur:
        out.append("".join(cur).strip())
    return out


class Renderer:
    """Formats one event type's payloads like its ``print fmt`` (common conversions), else as
    ``field=value`` pairs."""

    _CONV = re.compile(r"%(?:[-+ #0]*)(?:\d+)?(?:\.\d+)?(?:hh|h|ll|l|z)?(p[sSFfB]?|[diuxXsc]|%)")

    def __init__(self, fmt: EventFormat, symbols: Symbols):
        self.fmt = fmt
        self.symbols = symbols
        self.template: str | None = None
        self.args: list[str] = []
        pf = fmt.print_fmt
        m = re.match(r'^"((?:[^"\\]|\\.)*)"\s*,?\s*(.*)$', pf, re.S)
        if m:
            self.template = m.group(1).replace("\\n", "").replace('\\"', '"')
            self.args = _split_args(m.group(2)) if m.group(2) else []
        self.fields = [f for f in fmt.fields.values() if not f.name.startswith("common_")]

    def _value(self, expr: str, conv: str, vals: dict[str, Any], raw: bytes) -> str:
        expr = expr.strip()
        sm = _RX_SYMBOLIC.match(expr)
        if sm:
            v = vals.get(sm.group(1))
            table = {int(k, 0): name for k, name in _RX_PAIR.findall(sm.group(2))}
            return table.get(int(v), str(v)) if v is not None else "?"
        fm = re.search(r"REC->(\w+)", expr)
        gm = re.search(r"__get_str\((\w+)\)", expr)
        if gm:
            f = self.fmt.fields.get(gm.group(1))
            if f is not None and f.size == 4:
                loc = int.from_bytes(raw[f.offset:f.offset + 4], "little")
                off, ln = loc & 0xFFFF, loc >> 16
                return raw[off:off + ln].split(b"\0", 1)[0].decode("utf-8", "replace")
            return "?"
        if fm is None:
            raise ValueError(expr)
        v = vals.get(fm.group(1))
        if v is None:
            raise ValueError(expr)
        v = int(v)
        if conv in ("pS", "ps", "pF", "pf", "pB"):
            if v == 0:
                return "0x0"
            names, _, off = self.symbols.lookup(np.array([v], dtype=np.uint64))
            return names[0] + (f"+0x{int(off[0]):x}" if conv in ("pS", "pF", "pB") and off[0] else "")
        if conv == "p":
            return f"{v & 0xFFFFFFFFFFFFFFFF:016x}"
        if conv in ("x", "X"):
            return f"{v & 0xFFFFFFFFFFFFFFFF:x}"
        if conv == "c":
            return chr(v & 0xFF)
        return str(v)

    def render(self, raw: bytes) -> str:
        vals: dict[str, Any] = {}
        for f in self.fields:
            if f.size in (1, 2, 4, 8) and not f.type.endswith("[]"):
                vals[f.name] = int.from_bytes(raw[f.offset:f.offset + f.size], "little", signed=f.signed)
        if self.template is not None:
            try:
                out = []
                pos = 0
                ai = 0
                for m in self._CONV.finditer(self.template):
                    out.append(self.template[pos:m.start()])
                    pos = m.end()
                    conv = m.group(1)
                    if conv == "%":
                        out.append("%")
                        continue
                    out.append(self._value(self.args[ai], conv, vals, raw))
                    ai += 1
                out.append(self.template[pos:])
                return f"{self.fmt.name}: " + "".join(out)
            except (ValueError, IndexError, KeyError):
                pass
        return f"{self.fmt.name}: " + " ".join(f"{k}={v}" for k, v in vals.items())
