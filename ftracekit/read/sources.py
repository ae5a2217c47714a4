"""Opening trace inputs: paths, ``-`` (stdin), file objects, ``.gz``/``.xz`` — as byte chunks.

Everything here raises :class:`~ftracekit.errors.InputError` with a one-line message for inputs
that cannot be used (missing, directory, unreadable, binary, trace-cmd ``.dat``, empty).
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Iterator, Union

from ..errors import InputError

__all__ = ["Source", "open_source", "PathOrFile"]

PathOrFile = Union[str, "os.PathLike[str]", IO[bytes], IO[str]]

CHUNK_BYTES = 8 << 20

_GZIP_MAGIC = b"\x1f\x8b"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_TRACECMD_MAGIC = b"\x17\x08\x44tracing"


@dataclass
class Source:
    """An opened input: ``name`` for messages, ``size`` in bytes when known (for progress)."""

    name: str
    stream: BinaryIO
    size: int | None
    compressed: bool
    owned: bool
    kind: str = "text"          # "text", or "trace.dat" for trace-cmd's binary format

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        """Yield the raw bytes in chunks (not cut at line boundaries)."""
        read = self.stream.read
        try:
            while True:
                data = read(chunk_bytes)
                if not data:
                    return
                yield data
        except (OSError, EOFError, lzma.LZMAError) as err:
            raise InputError(f"{self.name}: read failed: {err}") from err

    def position(self) -> int | None:
        """Bytes consumed so far of the underlying (possibly compressed) file, when known."""
        raw = getattr(self, "_raw", None)
        try:
            return raw.tell() if raw is not None else self.stream.tell()
        except (OSError, AttributeError, ValueError):
            return None

    def close(self) -> None:
        if self.owned:
            self.stream.close()
            raw = getattr(self, "_raw", None)
            if raw is not None:
                raw.close()


class _TextToBytes(io.RawIOBase):
    """Adapts a text file object to the byte-chunk interface."""

    def __init__(self, text: IO[str]):
        self._text = text
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        size = len(buf)
        while len(self._pending) < size:
            text = self._text.read(max(size, 1 << 16))
            if not text:
                break
            self._pending += text.encode("utf-8", "surrogateescape")
        data, self._pending = self._pending[:size], self._pending[size:]
        buf[: len(data)] = data
        return len(data)


def _wrap_compressed(name: str, raw: BinaryIO, head: bytes) -> tuple[BinaryIO, bool]:
    if head.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw, mode="rb"), True  # type: ignore[return-value]
    if head.startswith(_XZ_MAGIC):
        return lzma.LZMAFile(raw, mode="rb"), True  # type: ignore[return-value]
    return raw, False


def _peek(stream: BinaryIO, n: int) -> tuple[bytes, BinaryIO]:
    """Read ``n`` bytes ahead without losing them (works for pipes too)."""
    if hasattr(stream, "peek"):
        try:
            return stream.peek(n)[:n], stream  # type: ignore[attr-defined]
        except (OSError, ValueError):
            pass
    buffered = io.BufferedReader(stream, buffer_size=1 << 16)  # type: ignore[arg-type]
    return buffered.peek(n)[:n], buffered  # type: ignore[return-value]


def open_source(src: PathOrFile) -> Source:
    """Open ``src`` (path, ``"-"`` for stdin, or a binary/text file object) for chunked reading.

    Transparently decompresses gzip and xz (detected by magic bytes, not by name).
    """
    owned = False
    size: int | None = None
    if isinstance(src, (str, os.PathLike)):
        name = os.fspath(src)
        if name == "-":
            raw: BinaryIO = sys.stdin.buffer
            name = "<stdin>"
        else:
            path = Path(name)
            if not path.exists():
                raise InputError(f"{name}: no such file")
            if path.is_dir():
                raise InputError(f"{name}: is a directory, not a trace file")
            try:
                raw = open(path, "rb")  # noqa: SIM115 - closed by Source.close
            except PermissionError as err:
                raise InputError(f"{name}: permission denied") from err
            except OSError as err:
                raise InputError(f"{name}: cannot open: {err.strerror or err}") from err
            owned = True
            try:
                size = os.fstat(raw.fileno()).st_size
            except OSError:
                size = None
    elif isinstance(src, io.TextIOBase) or (hasattr(src, "read") and "b" not in getattr(src, "mode", "b")):
        name = getattr(src, "name", "<text stream>")
        raw = io.BufferedReader(_TextToBytes(src))  # type: ignore[arg-type]
        name = str(name)
    elif hasattr(src, "read"):
        raw = src  # type: ignore[assignment]
        name = str(getattr(src, "name", "<stream>"))
    else:
        raise InputError(f"cannot read a trace from a {type(src).__name__}")

    head, raw = _peek(raw, 16)
    stream, compressed = _wrap_compressed(name, raw, head)
    if compressed:
        try:
            head = stream.peek(16)[:16]  # type: ignore[attr-defined]
        except (OSError, EOFError, lzma.LZMAError, AttributeError) as err:
            if owned:
                raw.close()
            raise InputError(f"{name}: corrupt compressed data: {err}") from err
    source = Source(name=name, stream=stream, size=size, compressed=compressed, owned=owned,
                    kind="trace.dat" if head.startswith(_TRACECMD_MAGIC) else "text")
    if compressed:
        source._raw = raw  # type: ignore[attr-defined]
    return source
