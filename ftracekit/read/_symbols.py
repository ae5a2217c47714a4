"""Kernel text symbols (``/proc/kallsyms``): address → function name and module.

A capture needs a few hundred of the ~10^5 symbols: the file is parsed with numpy (addresses
only) and names are decoded when looked up.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Symbols"]


_HEX_DIGIT = np.full(256, 255, dtype=np.uint8)
_HEX_DIGIT[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16)
_HEX_DIGIT[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


class Symbols:
    """Kernel text symbols: address → (name, module) by nearest lower symbol."""

    def __init__(self, addrs: np.ndarray, names: list[str], modules: list[str | None]):
        order = np.argsort(addrs, kind="stable")
        self.addrs = addrs[order]
        self.names = [names[i] for i in order]
        self.modules = [modules[i] for i in order]

    def _name(self, j: int) -> str:
        return self.names[j]

    def _module(self, j: int) -> str | None:
        return self.modules[j]

    @classmethod
    def from_kallsyms(cls, text: str | bytes) -> "Symbols":
        """Text symbols (types t T w W) of ``/proc/kallsyms`` content; address 0 (read
        without root) is dropped."""
        data = text.encode("utf-8", "replace") if isinstance(text, str) else bytes(text)
        fast = _KallsymsSymbols.parse(data)
        if fast is not None:
            return fast
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        addrs: list[int] = []
        names: list[str] = []
        mods: list[str | None] = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 3 or parts[1] not in ("t", "T", "W", "w"):
                continue
            try:
                a = int(parts[0], 16)
            except ValueError:
                continue
            if a == 0:
                continue
            addrs.append(a)
            names.append(parts[2])
            mods.append(parts[3].strip("[]") if len(parts) > 3 else None)
        return cls(np.array(addrs, dtype=np.uint64), names, mods)

    def lookup(self, addrs: np.ndarray) -> tuple[list[str], list[str | None], np.ndarray]:
        """Names and modules for ``addrs``; the third array is the offset into the symbol."""
        if not len(self.addrs):
            return [f"0x{int(a):x}" for a in addrs], [None] * len(addrs), np.zeros(len(addrs), np.uint64)
        i = np.searchsorted(self.addrs, addrs, side="right") - 1
        ok = i >= 0
        iv = np.where(ok, i, 0)
        off = np.where(ok, addrs - self.addrs[iv], 0)
        names = [self._name(j) if good else f"0x{int(a):x}" for j, good, a in zip(iv.tolist(), ok.tolist(), addrs.tolist())]
        mods = [self._module(j) if good else None for j, good in zip(iv.tolist(), ok.tolist())]
        return names, mods, off


class _KallsymsSymbols(Symbols):
    """Symbols parsed with numpy from kallsyms lines ``<16 hex> <type> <name>`` (then
    ``<TAB>[<module>]`` for module symbols); names and modules are decoded only when looked up
    (a capture needs a few hundred of the ~10^5 symbols, and a Python loop over all of them
    costs a second under emulation)."""

    def __init__(self, data: bytes, addrs: np.ndarray, name_at: np.ndarray, name_end: np.ndarray,
                 mod_end: np.ndarray):
        order = np.argsort(addrs, kind="stable")
        self.addrs = addrs[order]
        self._data = data
        self._name_at, self._name_end = name_at[order], name_end[order]
        self._mod_end = mod_end[order]

    def _name(self, j: int) -> str:
        return self._data[self._name_at[j]:self._name_end[j]].decode("utf-8", "replace")

    def _module(self, j: int) -> str | None:
        end = int(self._mod_end[j])
        if end < 0:
            return None
        return self._data[int(self._name_end[j]) + 2:end].decode("utf-8", "replace")

    @classmethod
    def parse(cls, data: bytes) -> "_KallsymsSymbols | None":
        """None when some line is not in the 64-bit kallsyms format (the caller falls back)."""
        buf = np.frombuffer(data, dtype=np.uint8)
        nl = np.flatnonzero(buf == 10)
        starts = np.concatenate(([0], nl + 1)).astype(np.int64)
        ends = np.concatenate((nl, [len(buf)])).astype(np.int64)
        nonempty = ends > starts
        starts, ends = starts[nonempty], ends[nonempty]
        if not len(starts):
            return cls(data, np.zeros(0, np.uint64), *(np.zeros(0, np.int64),) * 3)
        if (ends - starts < 20).any():
            return None
        # spaces at columns 16 and 18 of every line and nowhere else: exactly two per line
        if ((buf[starts + 16] != 32) | (buf[starts + 18] != 32) | (buf[ends - 1] == 13)).any() \
                or np.count_nonzero(buf == 32) != 2 * len(starts):
            return None
        # the 16 hex digits of each line, read as two 8-byte values (a view at every byte)
        at8 = np.ndarray((len(buf) - 7,), dtype="<u8", buffer=buf, strides=(1,))
        text16 = np.empty((len(starts), 2), dtype=np.uint64)
        text16[:, 0] = at8[starts]
        text16[:, 1] = at8[starts + 8]
        digits = _HEX_DIGIT[text16.view(np.uint8)].reshape(-1, 8, 2)
        if (digits == 255).any():
            return None
        packed = (digits[:, :, 0] << 4) | digits[:, :, 1]          # (n, 8) bytes, big endian
        addrs = packed.view(">u8").reshape(-1).astype(np.uint64)
        kind = buf[starts + 17]
        text = np.isin(kind, np.frombuffer(b"tTwW", np.uint8))
        keep = text & (addrs != 0)
        starts, ends, addrs = starts[keep], ends[keep], addrs[keep]
        name_at = starts + 19
        # "name<TAB>[module]": the name ends at the first tab of the line, else at its end
        tabs = np.flatnonzero(buf == 9)
        k = np.searchsorted(tabs, name_at)
        tab = tabs[np.minimum(k, max(len(tabs) - 1, 0))] if len(tabs) else ends
        has_mod = (k < len(tabs)) & (tab < ends) if len(tabs) else np.zeros(len(ends), bool)
        name_end = np.where(has_mod, tab, ends)
        if has_mod.any() and ((buf[name_end[has_mod] + 1] != ord("[")) |
                              (buf[ends[has_mod] - 1] != ord("]"))).any():
            return None
        mod_end = np.where(has_mod, ends - 1, -1)
        return cls(data, addrs, name_at, name_end, mod_end)
