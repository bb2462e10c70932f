"""Loading: every timestamp form, every bad-row kind, counts that reconcile, one transaction."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import datetime

import duckdb
import pytest

from analysis import db, errors
from analysis.ingest import loader as load
from tests.conftest import write

GOOD = {"ts": "2024-01-19T10:30:00Z", "user_id": "u1", "outcome": "success"}


def jl(*rows: dict | str) -> str:
    """JSON Lines text: dicts are dumped, strings are written as they are."""
    return "".join((json.dumps(r) if isinstance(r, dict) else r) + "\n" for r in rows)


def counts(result: load.LoadResult, kind: str = "auth") -> tuple[int, int, int]:
    t = result.totals(kind)
    return t["rows_read"], t["rows_loaded"], t["rows_rejected"]


@pytest.mark.parametrize(
    ("ts", "tz", "expected"),
    [
        ("2024-01-19T10:30:00Z", "UTC", datetime(2024, 1, 19, 10, 30)),
        ("2024-01-19T10:30:00.250Z", "UTC", datetime(2024, 1, 19, 10, 30, 0, 250000)),
        ("2024-01-19T11:30:00+01:00", "UTC", datetime(2024, 1, 19, 10, 30)),
        ("2024-01-19T05:30:00-05:00", "UTC", datetime(2024, 1, 19, 10, 30)),
        ("2024-01-19 10:30:00", "UTC", datetime(2024, 1, 19, 10, 30)),
        ("2024-01-19T11:30:00", "Europe/Paris", datetime(2024, 1, 19, 10, 30)),
        ("2024-07-19T12:30:00", "Europe/Paris", datetime(2024, 7, 19, 10, 30)),
        ("2024-01-19T11:30:00Z", "Europe/Paris", datetime(2024, 1, 19, 11, 30)),
        (1705660200, "UTC", datetime(2024, 1, 19, 10, 30)),
        (1705660200.5, "UTC", datetime(2024, 1, 19, 10, 30, 0, 500000)),
        (1705660200123, "UTC", datetime(2024, 1, 19, 10, 30, 0, 123000)),
        ("1705660200", "UTC", datetime(2024, 1, 19, 10, 30)),
    ],
)
def test_every_timestamp_form_lands_in_utc(con, tmp_path, ts, tz, expected):
    f = write(tmp_path / "a.jsonl", jl({**GOOD, "ts": ts}))
    result = load.load(con, auth=f, source_timezone=tz)
    assert counts(result) == (1, 1, 0)
    assert con.execute("select ts from auth_events").fetchall() == [(expected,)]


BAD_ROWS = [
    ('{"ts": "2024-01-19T10:30:00Z", "user_id": "u1", "outc', "broken JSON"),
    ("this is not json", "broken JSON"),
    ("[1, 2, 3]", "not a JSON object"),
    (json.dumps({**GOOD, "ts": "2024-02-30T10:00:00Z"}), "unparseable or impossible time"),
    (json.dumps({**GOOD, "ts": "2024-01-19T25:61:00Z"}), "unparseable or impossible time"),
    (json.dumps({**GOOD, "ts": "yesterday"}), "unparseable or impossible time"),
    (json.dumps({"user_id": "u", "outcome": "success"}), "missing required field ts"),
    (json.dumps({**GOOD, "outcome": None}), "missing required field outcome"),
    (json.dumps({**GOOD, "outcome": "maybe"}), "unknown outcome"),
    (json.dumps({**GOOD, "latency_ms": "fast"}), "non-numeric latency_ms"),
    (json.dumps({**GOOD, "latency_ms": -4}), "negative latency_ms"),
]


@pytest.mark.parametrize(("raw", "reason"), BAD_ROWS)
def test_each_bad_row_is_kept_with_file_line_and_reason(con, tmp_path, raw, reason):
    f = write(tmp_path / "a.jsonl", jl(GOOD, raw, GOOD))
    result = load.load(con, auth=f)
    assert counts(result) == (3, 2, 1)
    rows = con.execute("select source_file, line, raw, reason from rejects").fetchall()
    assert len(rows) == 1
    source_file, line, stored_raw, stored_reason = rows[0]
    assert source_file == str(f)
    assert line == 2
    assert stored_raw == raw
    assert stored_reason.startswith(reason)


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps({"ts": GOOD["ts"], "outcome": "failure", "error_code": "bad_redirect"}),
        json.dumps({**GOOD, "user_id": "", "outcome": "failure"}),
        json.dumps({**GOOD, "user_id": "   ", "outcome": "failure"}),
        json.dumps({**GOOD, "user_id": None, "outcome": "failure"}),
    ],
)
def test_an_attempt_without_a_user_is_loaded_with_a_null_user(con, tmp_path, raw):
    # a failure before the user is known (a callback-URL mismatch) is part of the outage
    f = write(tmp_path / "a.jsonl", jl(GOOD, raw, GOOD))
    assert counts(load.load(con, auth=f)) == (3, 3, 0)
    rows = con.execute("select line, user_id, outcome from auth_events order by line").fetchall()
    assert rows == [(1, "u1", "success"), (2, None, "failure"), (3, "u1", "success")]


def test_a_file_with_no_user_id_field_anywhere_is_refused(con, tmp_path):
    f = write(tmp_path / "a.jsonl", jl({"ts": GOOD["ts"], "outcome": "success"}))
    with pytest.raises(errors.LoadError, match="no row has the required field user_id"):
        load.load(con, auth=f)


def test_bom_crlf_blank_lines_and_invalid_utf8(con, tmp_path):
    good = json.dumps(GOOD).encode()
    data = (
        b"\xef\xbb\xbf"
        + good
        + b"\r\n"  # line 1: BOM and CRLF, loads
        + b"\r\n"  # line 2: blank, not a row
        + b"   \n"  # line 3: blank, not a row
        + good.replace(b"u1", b"u\xff\xfe")
        + b"\n"  # line 4: invalid UTF-8
        + good
        + b"\r\n"  # line 5
        + good  # line 6: no final newline
    )
    f = write(tmp_path / "a.jsonl", data)
    result = load.load(con, auth=f)
    assert counts(result) == (4, 3, 1)
    assert con.execute("select line, reason from rejects").fetchall() == [(4, "invalid UTF-8")]
    assert [
        r[0] for r in con.execute("select line from auth_events order by line").fetchall()
    ] == [1, 5, 6]
    assert con.execute("select distinct user_id from auth_events").fetchall() == [("u1",)]


def test_outcome_is_case_insensitive_and_extras_are_kept(con, tmp_path):
    f = write(
        tmp_path / "a.jsonl",
        jl(
            {**GOOD, "outcome": "SUCCESS", "region": "eu"},
            {**GOOD, "outcome": "Failure", "error_code": "db_timeout", "client": "ios"},
        ),
    )
    load.load(con, auth=f)
    rows = con.execute(
        "select outcome, error_code, region, client from auth_events order by line"
    ).fetchall()
    assert rows == [("success", None, "eu", None), ("failure", "db_timeout", None, "ios")]


def test_csv_quoting_column_count_and_header(con, tmp_path):
    text = (
        "ts,duration_ms,statement,request_id\r\n"
        "2024-01-19T10:30:00Z,1.5,\"SELECT a, b FROM t WHERE s = 'x'\",r1\r\n"
        "2024-01-19T10:30:01Z,2,SELECT 1\r\n"  # one column short
        '2024-01-19T10:30:02Z,3,"say ""hi""",r2\r\n'
        "2024-01-19T10:30:03Z,abc,SELECT 2,r3\r\n"
    )
    f = write(tmp_path / "q.csv", text)
    result = load.load(con, queries=f)
    assert counts(result, "queries") == (4, 2, 2)
    assert con.execute("select line, reason from rejects order by line").fetchall() == [
        (3, "wrong column count: expected 4, got 3"),
        (5, "non-numeric duration_ms: abc"),
    ]
    rows = con.execute("select statement, fingerprint from db_queries order by line").fetchall()
    assert rows[0][0] == "SELECT a, b FROM t WHERE s = 'x'"
    assert rows[1][0] == 'say "hi"'
    assert rows[0][1] == "select a, b from t where s = ?"


def test_queries_need_statement_or_fingerprint_and_keep_a_given_fingerprint(con, tmp_path):
    f = write(
        tmp_path / "q.jsonl",
        jl(
            {"ts": GOOD["ts"], "duration_ms": 1, "fingerprint": "select ?"},
            {"ts": GOOD["ts"], "duration_ms": 1},
            {
                "ts": GOOD["ts"],
                "duration_ms": 1,
                "statement": "SELECT * FROM t WHERE id IN (1,2,3)",
            },
        ),
    )
    result = load.load(con, queries=f)
    assert counts(result, "queries") == (3, 2, 1)
    assert con.execute("select fingerprint from db_queries order by line").fetchall() == [
        ("select ?",),
        ("select * from t where id in(?+)",),
    ]


def test_loading_the_same_file_twice_adds_nothing(con, tmp_path):
    f = write(tmp_path / "a.jsonl", jl(GOOD, GOOD))
    first = load.load(con, auth=f)
    again = load.load(con, auth=f)
    assert again.files[0].already_loaded
    assert again.source_ids("auth") == first.source_ids("auth")
    assert con.execute("select count(*) from auth_events").fetchall() == [(2,)]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.jsonl", None, "no such file"),
        ("a.jsonl", b"PAR1\x00\x00binary", "is Parquet data, not JSON Lines"),
        ("a.jsonl", "not json\nnor this\n", "no line is a JSON object"),
        (
            "a.jsonl",
            jl({"ts": GOOD["ts"], "outcome": "success"}),
            "no row has the required field user_id",
        ),
        ("a.csv", "when,user_id,outcome\n2024-01-19T10:30:00Z,u,success\n", "no ts column"),
        ("a.txt", "x\n", "cannot tell the format"),
    ],
)
def test_an_unreadable_file_stops_the_load_and_leaves_the_database_as_it_was(
    con, tmp_path, name, content, message
):
    before = write(tmp_path / "before.jsonl", jl(GOOD))
    load.load(con, auth=before)
    snapshot = con.execute(
        "select (select count(*) from auth_events), (select count(*) from sources), "
        "(select count(*) from rejects)"
    ).fetchall()
    good = write(tmp_path / "good.jsonl", jl(GOOD, GOOD, "broken"))
    bad = tmp_path / name
    if content is not None:
        write(bad, content)
    with pytest.raises(errors.LoadError) as err:
        load.load(con, auth=[good, bad])
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert (
        con.execute(
            "select (select count(*) from auth_events), (select count(*) from sources), "
            "(select count(*) from rejects)"
        ).fetchall()
        == snapshot
    )


def test_gzip_glob_and_list_inputs(con, tmp_path):
    with gzip.open(tmp_path / "a1.jsonl.gz", "wt") as fh:
        fh.write(jl(GOOD, GOOD))
    write(tmp_path / "a2.jsonl", jl(GOOD))
    write(tmp_path / "b.jsonl", jl(GOOD, GOOD, GOOD))
    result = load.load(con, auth=[str(tmp_path / "a*"), tmp_path / "b.jsonl"])
    assert [f.rows_loaded for f in result.files] == [2, 1, 3]


def test_a_gzip_file_cut_short_is_one_clear_error(con, tmp_path):
    full = gzip.compress(jl(*[GOOD] * 2000).encode())
    f = write(tmp_path / "a.jsonl.gz", full[: len(full) // 2])
    with pytest.raises(errors.LoadError, match="a.jsonl.gz"):
        load.load(con, auth=f)
    assert con.execute("select count(*) from auth_events").fetchall() == [(0,)]


def test_parquet_rows_are_validated_like_text(con, tmp_path):
    src = write(
        tmp_path / "a.jsonl",
        jl(GOOD, {**GOOD, "outcome": "nope"}, {**GOOD, "ts": 1705660200, "region": "eu"}),
    )
    pq = tmp_path / "a.parquet"
    duckdb.read_json(str(src), format="newline_delimited").to_parquet(str(pq))
    result = load.load(con, auth=pq)
    assert counts(result) == (3, 2, 1)
    assert con.execute("select line, reason from rejects").fetchall() == [
        (2, "unknown outcome: nope")
    ]


def test_a_long_run_of_lines_crosses_chunk_boundaries_without_losing_one(
    con, tmp_path, monkeypatch
):
    from analysis.ingest import lines

    monkeypatch.setattr(lines, "CHUNK_BYTES", 1000)
    rows = [{**GOOD, "user_id": f"u{i}"} for i in range(500)]
    rows[250] = "broken"
    f = write(tmp_path / "a.jsonl", jl(*rows))
    monkeypatch.setattr(
        lines, "iter_chunks", lambda p, chunk_bytes=1000, **k: _orig_iter(p, chunk_bytes=1000)
    )
    result = load.load(con, auth=f)
    assert counts(result) == (500, 499, 1)
    assert con.execute("select line from rejects").fetchall() == [(251,)]
    assert con.execute("select count(distinct line), max(line) from auth_events").fetchall() == [
        (499, 500)
    ]


from analysis.ingest.lines import iter_chunks as _orig_iter  # noqa: E402


def test_statements_are_fingerprinted_once_per_key_yet_row_by_row(
    con, tmp_path, monkeypatch, statement_key
):
    from analysis.ingest import lines

    monkeypatch.setattr(
        lines, "iter_chunks", lambda p, chunk_bytes=1000, **k: _orig_iter(p, chunk_bytes=1000)
    )
    templates = [
        "SELECT a FROM t{i} WHERE id = {i}",  # a digit in a name is the name: one class each
        "select * from docs where id in ({i}, {j}) and o = 'u{i}'",
        'select "c {i}" from t where x = {i}',  # a quoted name: its own key
        "select 1 -- caller {i}",
    ]
    rows = []
    for i in range(120):
        t = templates[i % 4]
        rows.append(
            {"ts": "2024-01-19T10:30:00Z", "duration_ms": 1, "statement": t.format(i=i % 7, j=i)}
        )
    rows.append({"ts": "2024-01-19T10:30:00Z", "duration_ms": 1, "fingerprint": "given as is"})
    a = write(tmp_path / "a.jsonl", jl(*rows[:60]))
    b = write(tmp_path / "b.jsonl", jl(*rows[60:]))
    load.load(con, queries=[a, b])
    got = con.execute(
        "select count(*), count(*) filter (where fingerprint = fingerprint(statement)), "
        "count(distinct fingerprint) filter (where statement like 'SELECT a FROM t%'), "
        "count(*) filter (where fingerprint = 'given as is') from db_queries"
    ).fetchone()
    assert got == (121, 120, 7, 1)
    assert con.execute(
        "select distinct fingerprint from db_queries where statement like '%docs%'"
    ).fetchall() == [("select * from docs where id in(?+) and o = ?",)]


def test_timeline_yaml_rows_and_bad_kinds(con, tmp_path):
    f = write(
        tmp_path / "t.yaml",
        "- ts: 2024-01-19T10:26:00Z\n  kind: change\n  text: deploy\n"
        "- {ts: '2024-01-19T10:33:00Z', kind: Detection, text: alert}\n"
        "- {ts: '2024-01-19T10:40:00Z', kind: party, text: cake}\n",
    )
    result = load.load(con, timeline=f)
    assert counts(result, "timeline") == (3, 2, 1)
    assert con.execute("select ts, kind, text from timeline order by ts").fetchall() == [
        (datetime(2024, 1, 19, 10, 26), "change", "deploy"),
        (datetime(2024, 1, 19, 10, 33), "detection", "alert"),
    ]
    assert con.execute("select line, reason from rejects").fetchall() == [
        (5, "unknown timeline kind: party")
    ]


def test_the_same_file_read_with_other_settings_replaces_its_earlier_load(con, tmp_path):
    f = write(tmp_path / "a.jsonl", jl({**GOOD, "ts": "2024-01-19 10:00:00"}) + "{broken\n")
    first = load.load(con, auth=f)
    again = load.load(con, auth=f, source_timezone="Europe/Paris")
    assert not again.files[0].already_loaded
    assert again.source_ids("auth") != first.source_ids("auth")
    assert again.files[0].notes == [f"replaced the load of {f} (jsonl, other settings)"]
    # one login is one row: the earlier load's rows and rejects went with it
    rows = con.execute("select source_id, ts from auth_events order by source_id").fetchall()
    assert rows == [(again.source_ids("auth")[0], datetime(2024, 1, 19, 9, 0))]
    assert con.execute("select distinct source_id from rejects").fetchall() == [
        (again.source_ids("auth")[0],)
    ]
    assert con.execute("select count(*) from sources").fetchall() == [(1,)]
    assert load.load(con, auth=f, source_timezone="Europe/Paris").files[0].already_loaded
    assert any("replaced the load of" in line for line in load.describe(again))


def test_a_failed_reload_leaves_the_earlier_load_in_place(con, tmp_path):
    f = write(tmp_path / "a.jsonl", jl(GOOD))
    load.load(con, auth=f)
    before = con.execute("select * from auth_events").fetchall()
    with pytest.raises(errors.LoadError):
        load.load(con, auth=f, auth_format="csv")  # not CSV: the whole file is refused
    assert con.execute("select * from auth_events").fetchall() == before
    assert con.execute("select count(*) from sources").fetchall() == [(1,)]


def test_a_database_of_an_older_version_is_named_not_crashed_on(tmp_path):
    old = tmp_path / "old.duckdb"
    c = duckdb.connect(str(old))
    c.execute("create table sources (source_id integer, kind varchar, path varchar)")
    c.close()
    with pytest.raises(errors.SchemaError, match=r"old\.duckdb: was made by an older version"):
        db.connect(old)


def test_a_file_hash_is_remembered_until_the_file_changes(con, tmp_path, monkeypatch):
    import os

    f = write(tmp_path / "a.jsonl", jl(GOOD))
    first = load.load(con, auth=f).files[0]
    # unchanged: found by its hash without reading it again
    monkeypatch.setattr(load, "sha256_of", lambda p: pytest.fail("hashed again"))
    again = load.load(con, auth=f).files[0]
    assert again.already_loaded and again.sha256 == first.sha256
    monkeypatch.undo()
    # the same size and the same mtime, other bytes: ctime tells, and it is loaded anew
    st = f.stat()
    f.write_text(f.read_text().replace('"u1"', '"u2"'))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    changed = load.load(con, auth=f).files[0]
    assert not changed.already_loaded and changed.sha256 != first.sha256
    assert con.execute("select user_id from auth_events order by source_id").fetchall() == [
        ("u1",),
        ("u2",),
    ]


def test_an_attempt_of_either_outcome_without_a_user_loads_with_a_null_user(con, tmp_path):
    # CONTRACT: an attempt whose user the source does not know loads with a null user_id; a
    # success can have none too (a machine's client-credentials grant, Auth0 seccft)
    no_user = {"ts": GOOD["ts"], "outcome": "failure"}
    f = write(tmp_path / "a.jsonl", jl(GOOD, no_user, {**no_user, "outcome": "success"}))
    result = load.load(con, auth=f)
    assert counts(result) == (3, 3, 0)
    assert con.execute("select line, user_id from auth_events order by line").fetchall() == [
        (1, "u1"),
        (2, None),
        (3, None),
    ]


def test_a_copy_of_a_loaded_file_under_another_name_adds_nothing(con, tmp_path):
    # a new name is read while it is hashed; its bytes were loaded already: its rows go again
    f = write(tmp_path / "a.jsonl", jl(GOOD, '{"ts": "x", "outcome": "failure"}'))
    first = load.load(con, auth=f).files[0]
    copy = write(tmp_path / "copy.jsonl", f.read_bytes())
    again = load.load(con, auth=copy).files[0]
    assert again.already_loaded and again.sha256 == first.sha256
    assert again.source_id == first.source_id
    assert con.execute("select count(*), min(source_id) from auth_events").fetchall() == [
        (1, first.source_id)
    ]
    assert con.execute("select count(*) from rejects").fetchall() == [(1,)]
    assert con.execute("select count(*) from sources").fetchall() == [(1,)]


# trim strips the space and the Unicode spaces (Zs); tab, newline and the rest stay
_TEXT_CHARS = [" ", "a", "Z", "1", "\t", "\n", "\u00a0", "\u3000", "\u2009", "é", "~", "\x7f"]


def test_text_is_tidied_exactly_as_trim_and_nullif_would(con):
    # tidy_text calls trim only where it could strip something (issue 16): every mix of
    # ASCII, spaces of both kinds and other characters, at either end, gives what
    # nullif(trim(s), '') gives
    import itertools

    texts = ["".join(p) for n in range(4) for p in itertools.product(_TEXT_CHARS, repeat=n)]
    texts.append(None)
    differ = con.execute(
        "select list(s) from (select unnest($t) as s) "
        "where tidy_text(s) is distinct from nullif(trim(s), '')",
        {"t": texts},
    ).fetchall()[0][0]
    assert len(texts) == 1 + 1 + 12 + 144 + 1728 and not differ


@pytest.mark.parametrize(
    "ts, expected",
    [
        ("2024-01-19T10:30:00Z", datetime(2024, 1, 19, 10, 30)),  # the cast as it is
        ("2024-01-19T10:30:00.250Z", datetime(2024, 1, 19, 10, 30, 0, 250_000)),
        ("2024-01-19T10:30:00,250Z", datetime(2024, 1, 19, 10, 30, 0, 250_000)),  # the rest
        (" 2024-01-19T10:30:00Z", datetime(2024, 1, 19, 10, 30)),  # a space first: trimmed
        ("2024-01-19T10:30:00Z\u00a0", datetime(2024, 1, 19, 10, 30)),  # so is a Unicode one
        ("2024-01-19T12:30:00+02:00", datetime(2024, 1, 19, 10, 30)),
        ("2024-01-19 11:30:00 CET", datetime(2024, 1, 19, 10, 30)),
        ("2024-07-19 12:30:00 CEST", datetime(2024, 7, 19, 10, 30)),
        ("1705660200", datetime(2024, 1, 19, 10, 30)),
        ("19/Jan/2024:11:30:00 +0100", datetime(2024, 1, 19, 10, 30)),
        ("2024-02-30T10:30:00Z", None),  # no such day: null, by either road
    ],
)
def test_times_are_read_the_same_by_the_iso_shortcut_and_the_whole_expression(con, ts, expected):
    from analysis.ingest import validate

    sql = f"select {validate.ts_expr('$ts', utc=True)}"  # noqa: S608 - fixed SQL
    assert con.execute(sql, {"ts": ts}).fetchall() == [(expected,)]


def test_postmortem_load_does_not_import_pandas(tmp_path):
    # pandas was half of the command's start-up (0.28 of 0.53 s of imports), a cost every
    # load paid for figures it never computes
    log = tmp_path / "q.jsonl"
    log.write_text(
        '{"ts": "2024-01-19T10:00:00Z", "duration_ms": 1, "statement": "SELECT 1"}\n',
        encoding="utf-8",
    )
    code = (
        "import sys\n"
        "from analysis import cli\n"
        f"sys.argv = ['postmortem', '-q', 'load', '--database', {str(tmp_path / 'd.duckdb')!r},"
        f" '--queries', {str(log)!r}, '--timeline', '']\n"
        "assert cli.main() == 0\n"
        "print('pandas imported:', 'pandas' in sys.modules)\n"
    )
    (tmp_path / "notes.txt").write_text("not a timeline\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout
    assert "1 read, 1 loaded, 0 rejected" in out and "pandas imported: False" in out, out
    # `--timeline ""` is no timeline, not the working directory's files
    assert "timeline" not in out and "notes.txt" not in out, out


def test_an_empty_input_is_none_not_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("x\n", encoding="utf-8")
    assert load.expand_inputs([""]) == [] and load.expand_inputs(["", " "]) == []
    assert load.expand_inputs(["", "notes.txt"]) == [
        tmp_path.joinpath("notes.txt").relative_to(tmp_path)
    ]
