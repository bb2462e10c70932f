"""The fast path of clean JSON Lines (analysis.ingest.fastjson): the same rows, line numbers and
fingerprints as the line-level path, and the line-level path wherever a line needs it."""

from __future__ import annotations

import json

import pytest

from analysis import db
from analysis.ingest import fastjson
from analysis.ingest import loader as load

COLUMNS = "line, ts, duration_ms, statement, fingerprint, request_id, caller, db_host, rows"


def _queries(n: int) -> list[str]:
    """``n`` query lines whose request id names their line; varied values and extras."""
    out = []
    for i in range(1, n + 1):
        row = {
            "ts": f"2024-01-19T10:{i // 6000 % 60:02d}:{i // 100 % 60:02d}.{i % 1000:03d}Z",
            "duration_ms": [1.5, 20, "3.25", 1e2][i % 4],
            "statement": f"SELECT * FROM t{i % 7} WHERE id = {i} AND name = 'n{i}'",  # noqa: S608 - data
            "request_id": f"r{i}",
            "caller": None if i % 5 == 0 else "api",
            "rows": i % 3,
        }
        if i == n // 2:
            row["shard"] = {"a": 1}  # an extra field in the middle of the file only
        out.append(json.dumps(row))
    return out


def _load(tmp_path, name: str, lines: list[str], *, fast: bool, monkeypatch) -> tuple:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(fastjson, "MIN_BYTES", 0 if fast else 1 << 62)
    con = db.connect(tmp_path / f"{name}-{fast}.duckdb")
    result = load.load(con, queries=path)
    rows = con.execute(f"select {COLUMNS}, shard from db_queries order by line").fetchall()  # noqa: S608
    rejects = con.execute("select line, raw, reason from rejects order by line").fetchall()
    con.close()
    return result.files[0], rows, rejects


def test_a_clean_file_loads_the_same_rows_lines_and_fingerprints_on_both_paths(
    tmp_path, monkeypatch, statement_key
):
    # 300k lines (about 50 MB): read_json reads it in several parallel parts
    lines = _queries(300_000)
    seen = []
    monkeypatch.setattr(fastjson, "_check", lambda p, f=fastjson._check: seen.append(p) or f(p))
    fast, fast_rows, _ = _load(tmp_path, "q.jsonl", lines, fast=True, monkeypatch=monkeypatch)
    assert seen, "the fast path was not tried"
    slow, slow_rows, _ = _load(tmp_path, "q.jsonl", lines, fast=False, monkeypatch=monkeypatch)
    assert (fast.rows_read, fast.rows_loaded, fast.rows_rejected) == (300_000, 300_000, 0)
    assert (slow.rows_read, slow.rows_loaded) == (fast.rows_read, fast.rows_loaded)
    # every row's line is the line its request id names
    assert all(r[5] == f"r{r[0]}" for r in fast_rows)
    assert fast_rows == slow_rows
    assert fast_rows[149_999][-1] == '{"a":1}'


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("", None),  # a blank line: read_json would skip it and shift every line after
        ("{broken", "broken JSON"),
        ('{"ts": "2024-01-19T10:00:00Z", "ts": "x", "duration_ms": 1, "statement": "s"}', None),
        ('{"ts": "yesterday", "duration_ms": 1, "statement": "s"}', "unparseable"),
        ("[1, 2]", "not a JSON object"),
        # a tab before the brace: the line-level path rejects the line, read_json reads it
        ('\t{"ts": "2024-01-19T10:00:00Z", "duration_ms": 1, "statement": "s"}', "not a JSON"),
        # spaces before the brace: the check wants '{' first, so the line-level path reads it
        ('  {"ts": "2024-01-19T10:00:00Z", "duration_ms": 1, "statement": "s"}', None),
        # a field named rowid, by which the fast path numbers its lines, or fp_key, in which
        # it keys statements, or ordinality, by which it once numbered them
        (
            '{"ts": "2024-01-19T10:00:00Z", "duration_ms": 1, "statement": "s", "FP_key": "k"}',
            None,
        ),
        (
            '{"ts": "2024-01-19T10:00:00Z", "duration_ms": 1, "statement": "s", "Ordinality": 1}',
            None,
        ),
        ('{"ts": "2024-01-19T10:00:00Z", "duration_ms": 1, "statement": "s", "RowID": 1}', None),
        # a fingerprint of its own: kept as given, which only the line-level path does
        ('{"ts": "2024-01-19T10:00:00Z", "duration_ms": 1, "fingerprint": "given"}', None),
    ],
)
def test_a_file_with_a_line_the_fast_path_cannot_number_or_load_is_read_line_by_line(
    tmp_path, monkeypatch, bad, reason, statement_key
):
    lines = _queries(2000)
    lines.insert(1000, bad)
    fast, fast_rows, fast_rejects = _load(
        tmp_path, "q.jsonl", lines, fast=True, monkeypatch=monkeypatch
    )
    slow, slow_rows, slow_rejects = _load(
        tmp_path, "q.jsonl", lines, fast=False, monkeypatch=monkeypatch
    )
    assert fast_rows == slow_rows and fast_rejects == slow_rejects
    assert (fast.rows_read, fast.rows_loaded) == (slow.rows_read, slow.rows_loaded)
    # the lines after the bad one keep their own numbers
    assert fast_rows[-1][0] == 2001 and fast_rows[-1][5] == "r2000"
    if reason:
        assert fast_rejects[0][0] == 1001 and reason in fast_rejects[0][2]


def _assert_read_line_by_line(path, monkeypatch) -> None:
    """``path`` (100 query lines) loads whole, line by line: the fast path's check is never
    reached."""
    tried = []
    monkeypatch.setattr(fastjson, "_check", lambda p: tried.append(p))
    con = db.connect(":memory:")
    result = load.load(con, queries=path)
    assert result.files[0].rows_loaded == 100 and not tried
    assert con.execute("select max(line) from db_queries").fetchall() == [(100,)]
    con.close()


def test_a_compressed_file_takes_the_line_level_path(tmp_path, monkeypatch):
    import gzip

    path = tmp_path / "q.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(_queries(100)) + "\n").encode()))
    monkeypatch.setattr(fastjson, "MIN_BYTES", 0)
    _assert_read_line_by_line(path, monkeypatch)


@pytest.mark.parametrize(
    "part_bytes, kernel_copy", [(40_000, True), (150_000, True), (40_000, False)]
)
def test_a_file_larger_than_a_part_is_staged_in_parts_with_the_same_rows_and_lines(
    tmp_path, monkeypatch, part_bytes, kernel_copy
):
    # a whole 12.3 GB file in one insert ran out of the 3 GB memory limit: a large file is
    # read a part at a time, each part's lines numbered on from the last; a line that fails
    # falls in a later part, an extra field only in another
    lines = _queries(3000)
    lines.insert(2500, '{"ts": "yesterday", "duration_ms": 1, "statement": "s"}')
    parts = []
    real_stage = fastjson._stage
    monkeypatch.setattr(
        fastjson,
        "_stage",
        lambda con, kind, p, *rest: parts.append(p) or real_stage(con, kind, p, *rest),
    )
    monkeypatch.setattr(fastjson, "PART_BYTES", part_bytes)
    if not kernel_copy:  # a temporary folder on another file system: copied through a buffer

        def refused(*args):
            raise OSError(18, "Invalid cross-device link")

        monkeypatch.setattr(fastjson.os, "copy_file_range", refused)
    fast, fast_rows, fast_rejects = _load(
        tmp_path, "q.jsonl", lines, fast=True, monkeypatch=monkeypatch
    )
    slow, slow_rows, slow_rejects = _load(
        tmp_path, "q.jsonl", lines, fast=False, monkeypatch=monkeypatch
    )
    size = (tmp_path / "q.jsonl").stat().st_size
    assert len(parts) == -(-size // part_bytes) > 1
    assert (fast.rows_read, fast.rows_loaded, fast.rows_rejected) == (3001, 3000, 1)
    assert fast_rows == slow_rows and fast_rejects == slow_rejects
    assert fast_rejects[0][0] == 2501 and "unparseable" in fast_rejects[0][2]
    assert fast_rows[-1][0] == 3001 and fast_rows[-1][5] == "r3000"
    # every part's file was removed with its folder
    assert not any(p.exists() for p in parts)


def test_a_file_whose_rows_do_not_match_its_lines_is_forgotten_and_read_line_by_line(
    tmp_path, monkeypatch
):
    # the check makes every line one row; were read_json ever to give one row fewer, the
    # rows stored from the file would be misnumbered, so they go and the line-level path
    # reads the file
    real_stage = fastjson._stage
    monkeypatch.setattr(
        fastjson, "_stage", lambda *a: (lambda t: t.slice(0, t.num_rows - 1))(real_stage(*a))
    )
    monkeypatch.setattr(fastjson, "PART_BYTES", 40_000)
    lines = _queries(3000)
    fast, fast_rows, _ = _load(tmp_path, "q.jsonl", lines, fast=True, monkeypatch=monkeypatch)
    assert (fast.rows_read, fast.rows_loaded) == (3000, 3000)
    assert [r[0] for r in fast_rows] == list(range(1, 3001))
    assert all(r[5] == f"r{r[0]}" for r in fast_rows)


def test_the_check_runs_inside_a_jupyter_kernel(tmp_path):
    # a report loads inside a kernel, where DuckDB refuses to turn its progress bar off
    # (it wants ipywidgets); the check took that refusal for an unreadable file, and every
    # file of every report went the line-level path (0.6M rows: 4.7 s against 2.7 s)
    from jupyter_client.manager import start_new_kernel

    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(_queries(100)) + "\n", encoding="utf-8")
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    out: list[str] = []
    try:
        kc.execute_interactive(
            # with ipywidgets installed DuckDB accepts the setting; the refusal this test is
            # about is that of a kernel without it (a user's own Jupyter), made here
            "import sys\n"
            "sys.modules['ipywidgets'] = None\n"
            "import duckdb\n"
            "from analysis.ingest import fastjson\n"
            "try:\n"
            "    duckdb.connect().execute('set enable_progress_bar = false')\n"
            "    print('bar: accepted')\n"
            "except duckdb.InvalidInputException:\n"
            "    print('bar: refused')\n"
            f"print('check:', fastjson._check(__import__('pathlib').Path({str(path)!r})))\n",
            output_hook=lambda m: out.append(m["content"].get("text", "")),
            timeout=120,
        )
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    text = "".join(out)
    keys = ["caller", "duration_ms", "request_id", "rows", "shard", "statement", "ts"]
    assert f"check: (100, {keys!r})" in text, text
    # the kernel is one where the setting is refused: otherwise this test proves nothing
    assert "bar: refused" in text, text


def test_the_check_gives_every_key_of_the_file_however_it_is_spelled(tmp_path):
    """The key lists come back from DuckDB as JSON text: each key as JSON wrote it."""
    odd = ['a "quoted" key', "comma, and space", "close]", "back\\slash", "\u0001", "é ü 中", ""]
    rows = [{"ts": "2024-01-19T10:00:00Z", "statement": "s", k: 1} for k in odd]
    rows.append({"ts": "2024-01-19T10:00:01Z", "statement": "s"})
    path = tmp_path / "keys.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    n, keys = fastjson._check(path)
    assert n == len(rows)
    assert keys == sorted({"ts", "statement", *odd})


def _auth_lines(n: int) -> list[str]:
    return [
        json.dumps(
            {
                "ts": f"2024-01-19T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
                "user_id": f"u{i % 17}",
                "outcome": "failure" if i % 5 == 0 else "success",
                "request_id": f"r{i}",
            }
        )
        for i in range(1, n + 1)
    ]


def _load_auth(tmp_path, name: str, lines: list[str], *, fast: bool, monkeypatch) -> tuple:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(fastjson, "MIN_BYTES", 0 if fast else 1 << 62)
    con = db.connect(tmp_path / f"{name}-{fast}.duckdb")
    result = load.load(con, auth=path)
    rows = con.execute(
        "select line, ts, user_id, outcome, request_id from auth_events order by line"
    ).fetchall()
    rejects = con.execute("select line, raw, reason from rejects order by line").fetchall()
    con.close()
    return result.files[0], rows, rejects


@pytest.mark.parametrize(
    "odd, rejected",
    [
        # a decade early: a row like any other, on the fast path as it always was
        ('{"ts": "2014-01-19T10:31:00Z", "user_id": "u1", "outcome": "success"}', False),
        # a time that cannot be: a reject, its line alone read again
        ('{"ts": "2024-13-45T10:31:00Z", "user_id": "u1", "outcome": "success"}', True),
        ('{"ts": "2024-01-19T10:31:00Z", "user_id": "u1", "outcome": "maybe"}', True),
    ],
)
def test_one_odd_line_costs_itself_not_the_file(tmp_path, monkeypatch, odd, rejected):
    from analysis.ingest import readers

    plain = _auth_lines(3000)
    with_odd = plain[:1499] + [odd] + plain[1500:]
    read_line_by_line = []
    monkeypatch.setattr(
        readers,
        "load_text",
        lambda *a, f=readers.load_text, **k: read_line_by_line.append(a[2]) or f(*a, **k),
    )
    base, base_rows, _ = _load_auth(
        tmp_path, "plain.jsonl", plain, fast=True, monkeypatch=monkeypatch
    )
    fast, rows, rejects = _load_auth(
        tmp_path, "odd.jsonl", with_odd, fast=True, monkeypatch=monkeypatch
    )
    # the fast path kept the file: nothing was read line by line
    assert read_line_by_line == []
    # the known answer: the plain file's rows, but for line 1500
    assert [r for r in rows if r[0] != 1500] == [r for r in base_rows if r[0] != 1500]
    assert (fast.rows_read, fast.rows_loaded, fast.rows_rejected) == (
        3000,
        3000 - rejected,
        int(rejected),
    )
    # and exactly what the line-level path gives for the whole file, the odd line included
    slow, slow_rows, slow_rejects = _load_auth(
        tmp_path, "odd.jsonl", with_odd, fast=False, monkeypatch=monkeypatch
    )
    assert (rows, rejects) == (slow_rows, slow_rejects)
    assert (fast.rows_read, fast.rows_loaded, fast.rows_rejected) == (
        slow.rows_read,
        slow.rows_loaded,
        slow.rows_rejected,
    )
    assert [r[0] for r in rejects] == ([1500] if rejected else [])
    assert base.rows_loaded == 3000


def test_a_field_named_as_one_of_ours_in_another_case_is_not_kept_as_an_extra_column():
    # DuckDB's names ignore case: "TS" would stand in the table's ts, "FP_key" in the load's
    # own key, "Shard" after "shard" in the same column
    from analysis.ingest.readers import extras_from
    from analysis.kinds import QUERIES

    state: dict = {}
    names = ["ts", "shard", "TS", "FP_key", "Shard", "RowID", "region"]
    assert extras_from(names, QUERIES, state) == ["shard", "region"]
    assert state["skipped_columns"] == {"TS", "FP_key", "Shard", "RowID"}
