"""The physical lines of a text file, as ``analysis.ingest.lines`` numbers them, against
Python's own reading of the same bytes (newline splitting, one CR before a newline dropped, empty
lines left out but counted)."""

from __future__ import annotations

import bz2
import gzip
import random
from pathlib import Path

import pytest

from analysis.ingest import lines


def expected(data: bytes) -> list[tuple[int, bytes]]:
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    out = []
    for number, part in enumerate(parts, start=1):
        if part.endswith(b"\r"):
            part = part[:-1]
        if part:
            out.append((number, part))
    return out


def read(path, chunk_bytes: int) -> list[tuple[int, bytes]]:
    out = []
    for chunk in lines.iter_chunks(path, chunk_bytes=chunk_bytes):
        assert chunk.table.schema.names == ["line", "raw"]
        numbers = chunk.table.column("line").to_pylist()
        out += zip(numbers, chunk.table.column("raw").to_pylist(), strict=True)
    return out


def noise(seed: int, n: int) -> bytes:
    """Lines of every awkward shape: empty, CRLF, a lone CR, CR CR LF, long, UTF-8."""
    rng = random.Random(seed)
    pieces = [b"", b"\r", b"\r\r", b"x", b"caf\xc3\xa9", b"a\rb", b'{"k": 1}', b"y" * 300]
    out = []
    for _ in range(n):
        out.append(b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 4))))
        out.append(b"\n")
    return b"".join(out)


@pytest.mark.parametrize("chunk_bytes", [7, 64, 1000, 1 << 20])
@pytest.mark.parametrize("ending", [b"", b"last line without a newline", b"\r"])
def test_lines_match_python_whatever_the_chunks(tmp_path, chunk_bytes, ending):
    data = noise(chunk_bytes, 2000) + ending
    path = tmp_path / "log.txt"
    path.write_bytes(data)
    got = read(path, chunk_bytes)
    assert got == expected(data)
    assert any(raw.endswith(b"\r") for _, raw in got)  # a CR not before a newline stays


@pytest.mark.parametrize("opener", [gzip.open, bz2.open])
def test_compressed_lines_match_python(tmp_path, opener):
    data = noise(3, 30_000)  # more than the first 1 MB read of a compressed file
    path = tmp_path / ("log.gz" if opener is gzip.open else "log.bz2")
    with opener(path, "wb") as fh:
        fh.write(data)
    assert len(data) > 1 << 20
    assert read(path, lines.CHUNK_BYTES) == expected(data)


def test_a_file_of_empty_lines_only_has_none(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_bytes(b"\n\r\n\n")
    assert read(path, 2) == []


def test_a_file_that_grows_while_read_is_read_in_large_chunks(tmp_path):
    """Past the size the file had when the read began, reads grow from 1 MB: they were one
    byte each (a line a chunk, and each read copied the carried line again)."""
    path = tmp_path / "live.log"
    path.write_bytes(b"".join(b"first %d\n" % i for i in range(1000)))
    chunks = lines.iter_chunks(path, chunk_bytes=1 << 20)
    first = next(chunks)
    with path.open("ab") as fh:
        fh.write(b"".join(b"appended line %d\n" % i for i in range(20_000)))
    rest = list(chunks)
    assert first.table.num_rows + sum(c.table.num_rows for c in rest) == 21_000
    assert len(rest) <= 2
    assert rest[-1].table.column("raw").to_pylist()[-1] == b"appended line 19999"


def test_a_file_whose_size_reads_as_zero_is_read_whole(tmp_path):
    path = Path("/proc/self/status")
    if not path.exists():
        pytest.skip("needs Linux's /proc (a file whose size reads as 0)")
    got = list(lines.iter_chunks(path))
    assert len(got) == 1
    assert got[0].table.num_rows > 10
