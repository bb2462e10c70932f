"""Known-answer and bulk tests of the ``fingerprint`` DuckDB macro."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import fingerprint as fingerprint_module
from analysis.fingerprint import FINGERPRINT_MACRO, fingerprint, install

PGBENCH_UPDATE = "update pgbench_branches set bbalance = bbalance + ? where bid = ?"
PGBENCH_INSERT = (
    "insert into pgbench_history (tid, bid, aid, delta, mtime) "
    "values (?, ?, ?, ?, current_timestamp)"
)

# (statement, expected fingerprint); ids name the rule each case pins down.
KNOWN_ANSWERS = [
    pytest.param(
        "UPDATE pgbench_branches SET bbalance = bbalance + 4597 WHERE bid = 1;",
        PGBENCH_UPDATE,
        id="pgbench-update",
    ),
    pytest.param(
        "UPDATE pgbench_branches SET bbalance = bbalance + -3686 WHERE bid = 1;",
        PGBENCH_UPDATE,
        id="pgbench-update-negative-delta",
    ),
    pytest.param(
        "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2",
        PGBENCH_UPDATE,
        id="pgbench-update-bind-placeholders",
    ),
    pytest.param(
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
        "VALUES (2, 1, 72639, -4897, CURRENT_TIMESTAMP);",
        PGBENCH_INSERT,
        id="pgbench-insert",
    ),
    pytest.param("END;", "end", id="trailing-semicolon"),
    pytest.param("END", "end", id="no-semicolon"),
    pytest.param("  END ;  ", "end", id="semicolon-and-spaces"),
    pytest.param("SELECT * FROM t WHERE a IN (1,2,3)", "select * from t where a in(?+)", id="in"),
    pytest.param(
        "select * from t where a in ( 7 )", "select * from t where a in(?+)", id="in-one"
    ),
    pytest.param(
        "SELECT * FROM t WHERE a IN ($1, $2) AND b NOT IN ('x', 'y')",
        "select * from t where a in(?+) and b not in(?+)",
        id="in-placeholders-and-not-in",
    ),
    pytest.param(
        "SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c = 1)",
        "select * from t where a in (select b from u where c = ?)",
        id="in-subquery-kept",
    ),
    pytest.param(
        "SELECT min(1), join_in(2) FROM t",
        "select min(?), join_in(?) from t",
        id="in-inside-identifier-kept",
    ),
    pytest.param(
        "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')",
        "insert into t (a, b) values(?+)",
        id="values-multi-row",
    ),
    pytest.param(
        "INSERT INTO t (a, b) VALUES (1, now()), (2, now()) ON CONFLICT DO NOTHING",
        "insert into t (a, b) values (?, now()) on conflict do nothing",
        id="values-multi-row-first-row-kept",
    ),
    pytest.param(
        "SELECT 'O''Brien', 'O\\'Brien', 'a\\\\', 'it''s \\'quoted\\''",
        "select ?, ?, ?, ?",
        id="escaped-quotes",
    ),
    pytest.param(
        "SELECT '--not a comment', '/* nor this */', '#', 1 -- a comment",
        "select ?, ?, ?, ?",
        id="comment-markers-inside-strings",
    ),
    pytest.param(
        'SELECT \'say "hi"\', "Col" FROM t',
        'select ?, "Col" from t',
        id="double-quote-inside-string",
    ),
    pytest.param(
        "/* report\n   query */ SELECT a,\n\tb  -- it's a comment\n  FROM t\n"
        "  WHERE c = 2 # mysql comment\n  AND d = 'x'\n",
        "select a, b from t where c = ? and d = ?",
        id="multi-line-with-comments",
    ),
    pytest.param("-- only a comment", "", id="comment-only"),
    pytest.param(
        "SELECT t1.col_2, x3y, a$1, année2 FROM db1.t2 WHERE t1.id = 5",
        "select t1.col_2, x3y, a$1, année2 from db1.t2 where t1.id = ?",
        id="digits-in-identifiers-kept",
    ),
    pytest.param(
        "SELECT 0xDEADBEEF, 0XFF, x'DEADBEEF', X'01', B'101', E'tab\\t', N'x', U&'d\\0061t'",
        "select ?, ?, ?, ?, ?, ?, ?, ?",
        id="hex-bit-and-prefixed-strings",
    ),
    pytest.param(
        "SELECT 1e-5, 2.5E+10, 3.14, .5, 7., 1_000_000",
        "select ?, ?, ?, ?, ?, ?",
        id="decimals-and-exponents",
    ),
    pytest.param(
        "SELECT * FROM t WHERE a = -5 AND b > -2.5e3 AND c IN (-1,-2)",
        "select * from t where a = ? and b > ? and c in(?+)",
        id="negative-numbers",
    ),
    pytest.param(
        "SELECT a-1, a - 1, (a)-1, 2-1 FROM t",
        "select a-?, a - ?, (a)-?, ?-? from t",
        id="binary-minus-kept",
    ),
    pytest.param(
        "SELECT * FROM lieux WHERE nom = 'forêt & océan' AND ville = 'Zürich'",
        "select * from lieux where nom = ? and ville = ?",
        id="unicode-literals",
    ),
    pytest.param(
        "SELECT a FROM t WHERE a = NULL OR b IS NULL OR c IS NOT NULL",
        "select a from t where a = ? or b is ? or c is not ?",
        id="null",
    ),
    pytest.param(
        "SELECT nullable, is_true FROM t WHERE d = TRUE AND e <> false",
        "select nullable, is_true from t where d = ? and e <> ?",
        id="booleans",
    ),
    pytest.param(
        'SELECT "UserId", "col 2", "a""B" FROM "Users" WHERE "Users"."Age" > 30',
        'select "UserId", "col 2", "a""B" from "Users" where "Users"."Age" > ?',
        id="double-quoted-identifiers-verbatim",
    ),
    pytest.param(
        "SELECT $$it's -- not a comment$$, $body$x$body$ FROM t WHERE a = $1",
        "select ?, ? from t where a = ?",
        id="dollar-quoted-strings",
    ),
    pytest.param(
        "SELECT data #>> '{a,b}', data #- '{c}' FROM t WHERE id = 1",
        "select data #>> ?, data #- ? from t where id = ?",
        id="jsonb-hash-operators-not-comments",
    ),
    pytest.param(
        "SELECT a::varchar(255), b::int4, $1::int8 FROM t LIMIT 10 OFFSET 20",
        "select a::varchar(?), b::int4, ?::int8 from t limit ? offset ?",
        id="casts-and-limit",
    ),
    pytest.param(
        "SELECT * FROM t WHERE note = 'truncated by the logg",
        "select * from t where note = ?",
        id="unterminated-string",
    ),
    pytest.param(
        "  SELECT\ta,\n\n   b  FROM   t  ",
        "select a, b from t",
        id="whitespace-folded",
    ),
    pytest.param("", "", id="empty"),
    pytest.param(None, None, id="null-input"),
]


@pytest.mark.parametrize(("statement", "expected"), KNOWN_ANSWERS)
def test_known_answers(statement: str | None, expected: str | None) -> None:
    assert fingerprint(statement) == expected


@pytest.mark.parametrize(("statement", "expected"), KNOWN_ANSWERS)
def test_fingerprint_of_fingerprint_is_stable(statement: str | None, expected: str | None) -> None:
    # Stored fingerprints may be fed through the macro again (re-ingestion, joins).
    assert fingerprint(expected) == expected


def test_statement_text_is_bound_not_formatted() -> None:
    assert fingerprint("'); drop table t; --") == "?"


def test_macro_text_is_a_create_macro() -> None:
    assert FINGERPRINT_MACRO.startswith("create or replace temp macro fingerprint(s) as ")


def test_bulk_literals_collapse_inside_duckdb() -> None:
    con = duckdb.connect(":memory:")
    install(con)
    # Six templates; every row varies its literals (and list lengths, case, spacing,
    # comments, trailing ";"). Template 5 is template 0 logged with bind placeholders.
    con.execute(
        r"""
        create table statements as
        select i, i % 6 as template, i as x, i as fp_piece, case i % 6
            when 0 then 'UPDATE pgbench_accounts SET abalance = abalance + '
                || ((i * 7919) % 10001 - 5000) || ' WHERE aid = ' || i || ';'
            when 1 then 'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ('
                || i % 10 || ', 1, ' || i || ', ' || (i % 9999 - 4999)
                || ', CURRENT_TIMESTAMP);'
            when 2 then 'select * from t where a in ('
                || array_to_string(list_transform(range(i % 9 + 1), lambda n: n * i), ',')
                || ') and b = ' || (i / 7.0)
            when 3 then 'SELECT "Name" FROM "Users"  WHERE name = ''O''''Brien #' || i
                || ''' -- caller ' || i || chr(10) || '   AND score >= -' || i || 'e-3'
            when 4 then 'INSERT INTO t (a, b) VALUES ' || array_to_string(
                list_transform(range(i % 5 + 1), lambda n: '(' || n || ', ''v' || n || ''')'),
                ', ')
            else 'update PGBENCH_ACCOUNTS set abalance = abalance + $1 where aid = $2'
        end as s
        from range(6000) r(i)
        """
    )
    rows = con.execute("select distinct fingerprint(s) as f from statements order by f").fetchall()
    assert [f for (f,) in rows] == sorted(
        [
            "update pgbench_accounts set abalance = abalance + ? where aid = ?",
            PGBENCH_INSERT,
            "select * from t where a in(?+) and b = ?",
            'select "Name" from "Users" where name = ? and score >= ?',
            "insert into t (a, b) values(?+)",
        ]
    )
    # Columns named like the macro's lambda parameters must not leak into it.
    sample = con.execute("select s, fingerprint(s) from statements where i < 12").fetchall()
    assert all(fingerprint(s) == f for s, f in sample)


# --- the statement key a load fingerprints once (fingerprint(key(s)) = fingerprint(s)) ---

#: pieces a statement is made of: every context a digit or a quote can stand in
_PIECES = [
    "select",
    "SELECT",
    "from",
    "t1",
    "T2",
    "users_2009",
    "col_9x",
    "é1",
    "a",
    "x",
    "e",
    "E",
    "0x1F",
    "0b10",
    "0o7",
    "1e5",
    "1.25",
    ".5",
    "12",
    "0",
    "007",
    "1_000",
    "-",
    "+",
    "*",
    "=",
    "<>",
    ",",
    "(",
    ")",
    "[",
    "]",
    "?",
    "$1",
    "$a$",
    "$$",
    ".",
    ";",
    "'",
    "''",
    "'7'",
    "'a1'",
    "'it''s'",
    "\\",
    '"',
    '"a 1"',
    '"Col2"',
    "--",
    "/*",
    "*/",
    "#",
    "#>",
    "in",
    "IN",
    "values",
    "null",
    "true",
    "1)",
    "(2",
    " ",
    "  ",
    "\n",
    "\t",
    "e'5'",
    "x'1f'",
    "u&'3'",
]


@given(st.lists(st.sampled_from(_PIECES), max_size=24), st.lists(st.booleans(), max_size=24))
@settings(max_examples=500, deadline=None)
def test_the_key_of_a_statement_has_its_fingerprint(pieces: list[str], glue: list[bool]) -> None:
    statement = "".join(
        p + (" " if g else "") for p, g in zip(pieces, glue + [False] * 24, strict=False)
    )
    con = _key_connection()
    key, of_key, of_statement = con.execute(
        "select fingerprint_key($1), fingerprint(fingerprint_key($1)), fingerprint($1)",
        [statement],
    ).fetchone()
    assert of_key == of_statement, (statement, key)


def _native_key(statement: str) -> str | None:
    return fingerprint_module.statement_keys(pa.chunked_array([[statement]], pa.string()))[
        0
    ].as_py()


_NATIVE = pytest.mark.skipif(
    fingerprint_module.key_implementation() != "native", reason="the C extension is not built"
)


@_NATIVE
@given(st.lists(st.sampled_from(_PIECES), max_size=24), st.lists(st.booleans(), max_size=24))
@settings(max_examples=500, deadline=None)
def test_the_native_key_is_the_macros_on_generated_statements(
    pieces: list[str], glue: list[bool]
) -> None:
    statement = "".join(
        p + (" " if g else "") for p, g in zip(pieces, glue + [False] * 24, strict=False)
    )
    con = _key_connection()
    assert (
        _native_key(statement)
        == con.execute("select fingerprint_key(?)", [statement]).fetchone()[0]
    )


@_NATIVE
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60))
@settings(max_examples=500, deadline=None)
def test_the_native_key_is_the_macros_on_any_text(statement: str) -> None:
    # any character next to a digit or a quote: the classes' ranges, non-ASCII, newlines
    con = _key_connection()
    assert (
        _native_key(statement)
        == con.execute("select fingerprint_key(?)", [statement]).fetchone()[0]
    )


def test_the_native_key_keeps_nulls_and_the_chunks_and_keys_only_where_asked() -> None:
    if fingerprint_module.key_implementation() != "native":
        pytest.skip("the C extension is not built")
    statements = pa.chunked_array([["select 12", None], ["x = 'a' and y = 7"]], pa.large_string())
    keyed = pa.chunked_array([[True, True], [False]])
    assert fingerprint_module.statement_keys(statements).to_pylist() == [
        "select 1",
        None,
        "x = '' and y = 1",
    ]
    keys = fingerprint_module.statement_keys(statements, keyed=keyed)
    assert keys.to_pylist() == ["select 1", None, None]
    assert [len(c) for c in keys.chunks] == [2, 1]


def test_keys_fold_the_literals_of_one_query() -> None:
    con = _key_connection()
    statements = [
        "SELECT id FROM documents WHERE id IN (3027, 948) AND owner = 'u7'",
        "SELECT id FROM documents WHERE id IN (11, 5) AND owner = 'someone else'",
    ]
    keys = {con.execute("select fingerprint_key(?)", [s]).fetchone()[0] for s in statements}
    assert keys == {"SELECT id FROM documents WHERE id IN (1, 1) AND owner = ''"}
    # a digit after an identifier, ")" or inside a quoted name is not a value: kept
    for kept in ('select t2, a)25 from "t 1"', "select x from t -- 5"):
        assert con.execute("select fingerprint_key(?)", [kept]).fetchone()[0] in (
            kept,
            'select t2, a)25 from "t 1"',
        )


_KEY_CON: list[duckdb.DuckDBPyConnection] = []


def _key_connection() -> duckdb.DuckDBPyConnection:
    if not _KEY_CON:
        con = duckdb.connect(":memory:")
        install(con)
        _KEY_CON.append(con)
    return _KEY_CON[0]
