"""Read text logs as numbered physical lines, in large vectorised chunks.

Every text format (JSON Lines, CSV, server logs) starts here: the file is read in chunks of
bytes, split on newlines with numpy, and handed to DuckDB as Arrow tables of
``(line, raw)``, where ``line`` is the 1-based physical line number and ``raw`` the line's
bytes (newline and a trailing carriage return removed). Decoding, parsing and validation
then happen in SQL. Empty lines are dropped here but still counted in the line numbers, so
that a reject always names the line a person sees in an editor.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from analysis.errors import UnreadableFile

#: about 400k lines of JSON Lines: DuckDB works on batches of 122,880 rows, one per thread,
#: and 32 MB chunks (150k lines: one full batch and a small one) left one of two cores idle
CHUNK_BYTES = 96 * 1024 * 1024

#: magic numbers of formats that a text reader must refuse with a clear reason
MAGIC = {
    b"PAR1": "Parquet",
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ": "xz",
    b"PK\x03\x04": "zip",
    b"SQLite format 3": "SQLite",
    b"DUCK": "DuckDB",
}


@dataclass(frozen=True)
class Chunk:
    """One batch of physical lines: an Arrow table ``(line int64, raw large_binary)``."""

    table: pa.Table
    bytes_done: int
    bytes_total: int | None


def compression_of(path: Path) -> str | None:
    """The compression named by a file's ending (``gz``, ``bz2``, ``xz``) or None."""
    suffix = path.suffix.lower()
    return {".gz": "gz", ".bz2": "bz2", ".xz": "xz"}.get(suffix)


def open_bytes(path: Path) -> io.BufferedIOBase:
    """Open a file for reading bytes, decompressing by its ending."""
    kind = compression_of(path)
    if kind == "gz":
        return gzip.open(path, "rb")
    if kind == "bz2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    return open(path, "rb")


def sniff(path: Path) -> bytes:
    """The first bytes of a file's (decompressed) content, for format checks."""
    try:
        with open_bytes(path) as fh:
            return fh.read(64)
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise UnreadableFile(f"{path}: cannot be decompressed ({exc})") from exc


def binary_format(head: bytes) -> str | None:
    """Name of the binary format a file's first bytes show, or None for text."""
    for magic, name in MAGIC.items():
        if head.startswith(magic):
            return name
    if b"\x00" in head:
        return "binary"
    return None


def refuse_binary(path: Path, what: str) -> None:
    """Stop, naming the file, when its bytes are a binary format (Parquet, gzip named .log…)
    rather than the text format ``what`` that was asked for."""
    binary = binary_format(sniff(path))
    if binary:
        raise UnreadableFile(f"{path}: is {binary} data, not {what}")


#: bytes searched for newlines at a time: numpy's comparison makes a mask as large as what
#: it compares, and a mask of a whole chunk is 96 MB of fresh memory
_SCAN_BYTES = 8 * 1024 * 1024


def _newlines(buf: np.ndarray) -> np.ndarray:
    """The positions of the newlines of ``buf`` (int64), found a block at a time."""
    found = [
        np.flatnonzero(buf[i : i + _SCAN_BYTES] == 10) + i for i in range(0, len(buf), _SCAN_BYTES)
    ]
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


def _split(data: bytes | bytearray, first_line: int) -> tuple[pa.Table, int]:
    """Split ``data`` (ending with a newline) into numbered non-empty lines.

    Returns the table and the number of physical lines it covered. The lines' bytes are a
    copy of ``data`` without its newlines, made by ``bytes.replace`` (two copies when a
    carriage return before a newline goes too); an empty line is left out by dropping its
    offset, not by copying the rest. (A mask of the bytes, the bytes it kept and an Arrow
    filter of them made four copies of each chunk: 0.2 s of a 96 MB chunk, and up to 2 s
    where fresh memory is slow to come by, as on this project's virtual machines.)
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    nl = _newlines(buf)
    n = len(nl)
    starts = np.empty(n, dtype=np.int64)
    if n:
        starts[0] = 0
        starts[1:] = nl[:-1] + 1
    ends = nl.astype(np.int64)
    # a CRLF file keeps its CR before the newline: drop it with the newline (every "\r\n"
    # of the data is such a CR, so replacing the pairs drops exactly these)
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
    del buf
    text = data.replace(b"\r\n", b"") if has_cr.any() else data
    text = text.replace(b"\n", b"")
    lengths = ends - starts - has_cr
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    numbers = first_line + np.arange(n, dtype=np.int64)
    kept = lengths > 0
    if not kept.all():
        # the lines between two kept ones are empty: a kept line ends where the next starts
        where = np.flatnonzero(kept)
        offsets = np.append(offsets[where], offsets[-1])
        numbers = numbers[where]
    size = len(numbers)
    raw = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), size, [None, pa.py_buffer(offsets), pa.py_buffer(text)]
    )
    # arrays straight from numpy buffers: pa.array() would import pandas (0.4 s a process)
    lines = pa.Array.from_buffers(pa.int64(), size, [None, pa.py_buffer(numbers)])
    return pa.Table.from_arrays([lines, raw], names=["line", "raw"]), n


def _fill(fh: io.BufferedIOBase, view: memoryview) -> int:
    """Read into ``view`` until it is full or the file ends; the number of bytes read."""
    got = 0
    while got < len(view):
        n = fh.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def iter_chunks(
    path: Path,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> Iterator[Chunk]:
    """Yield the non-empty physical lines of a (possibly compressed) text file in chunks.

    Raises
    ------
    UnreadableFile
        when a compressed file is cut short or corrupt.
    """
    total = path.stat().st_size if compression_of(path) is None else None
    first_line = 1
    carry = b""
    done = 0
    unsized = 0
    try:
        with open_bytes(path) as fh:
            while True:
                # the line carried from the last chunk, then the file's next bytes, read in
                # place (a read and a concatenation were two copies of each chunk). A
                # bytearray is zeroed as it is made, so it is no larger than what is left to
                # read; where that is not known (a compressed file, or one past the size it
                # had: it grew, or says 0 as /proc does) 1 MB first, then twice more each
                # time up to chunk_bytes, so that a small file is not given 96 MB
                left = None if total is None else total - done
                if left is not None and left > 0:
                    want = min(chunk_bytes, left + 1)
                else:
                    want = min(chunk_bytes, (1 << 20) << min(unsized, 10))
                    unsized += 1
                data = bytearray(len(carry) + want)
                data[: len(carry)] = carry
                with memoryview(data) as view:
                    got = _fill(fh, view[len(carry) :])
                if not got:
                    break
                done += got
                filled = len(carry) + got
                cut = data.rfind(b"\n", 0, filled)
                if cut < 0:
                    carry = bytes(data[:filled])
                    continue
                carry = bytes(data[cut + 1 : filled])
                del data[cut + 1 :]
                table, n = _split(data, first_line)
                del data
                first_line += n
                yield Chunk(table, done, total)
    except (EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise UnreadableFile(f"{path}: cannot be read to the end ({exc})") from exc
    if carry:
        table, _ = _split(carry + b"\n", first_line)
        yield Chunk(table, done, total)


def first_lines(path: Path, *, limit: int = 2000) -> list[str]:
    """The first non-empty lines of a file, decoded (a BOM dropped), to tell its format."""
    out: list[str] = []
    for chunk in iter_chunks(path, chunk_bytes=min(CHUNK_BYTES, 1 << 20)):
        for raw in chunk.table.column("raw").to_pylist():
            out.append(raw.decode("utf-8", errors="replace").lstrip("\ufeff"))
            if len(out) >= limit:
                return out
    return out
