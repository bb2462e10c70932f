"""Query fingerprints: one DuckDB macro, after pt-query-digest's rules, made PostgreSQL-aware.

A fingerprint is a statement with its literals abstracted away, so that every execution
of "the same query" groups under one key::

    UPDATE pgbench_branches SET bbalance = bbalance + 4597 WHERE bid = 1;
    update pgbench_branches set bbalance = bbalance + $1 where bid = $2
    -> update pgbench_branches set bbalance = bbalance + ? where bid = ?

The only implementation is the SQL macro ``fingerprint(s)`` (a chain of RE2
``regexp_replace`` calls), so millions of log rows are fingerprinted inside DuckDB in
vectorised, multi-threaded code. :func:`fingerprint` runs the same macro for one string.
A load runs it once per statement *key* (see KEY_MACRO below), and computes the keys in
native code (:func:`statement_keys`, ``statement_key.c``) where the install compiled it.

Steps, in order (patterns are the module constants below):

1. ``_LEXICAL``: one leftmost-first pass over the whole statement, so a ``--`` inside a
   string is not a comment and a quote inside a comment does not open a string:
   double-quoted identifiers are kept verbatim; single-quoted strings (with ``''`` and
   ``\\'`` escapes, ``E''``/``X''``/``B''``/``N''``/``U&''`` prefixes) and dollar-quoted
   strings shrink to a one-character marker (``'`` or ``$``); ``/* */``, ``--`` and
   MySQL ``#`` comments are removed.
2. ``_WHITESPACE``: runs of whitespace become one space.
3. Outside double-quoted identifiers only (the statement is split on ``"``; a ``""``
   escape keeps the odd/even parity, so odd pieces are exactly the text outside):

   a. ``lower()``;
   b. ``_LITERALS``: string markers, numbers, ``$n`` placeholders, ``null``/``true``/
      ``false`` become ``?``;
   c. ``_MULTI_ROW``: a multi-row ``values (...), (...)`` keeps its first row only;
   d. ``_LIST``: ``in (?, ?)`` / ``values (?, ?)`` become ``in(?+)`` / ``values(?+)``.

4. Leading spaces, trailing spaces and trailing ``;`` are trimmed.

Decisions where pt-query-digest (a MySQL tool) and PostgreSQL disagree, or where
pt-query-digest does something we do not:

- Double quotes delimit identifiers (PostgreSQL, and MySQL under ANSI_QUOTES), so
  ``"Users"`` stays ``"Users"``: not ``?`` (pt treats it as a MySQL string) and not
  lowercased (a quoted name is case-sensitive in PostgreSQL).
- Digits inside identifiers are kept (``t1``, ``col_2``, ``pgbench_accounts``); pt's
  number pattern is deliberately sloppy and folds ``users_2009`` into ``users_?``.
- ``$1``, ``$2`` become ``?``, so a statement logged with bind parameters and the same
  statement logged with literals share one fingerprint.
- ``null`` becomes ``?`` everywhere, as in pt (``a = null`` is a literal; ``is null``
  becomes ``is ?`` and ``is not null`` becomes ``is not ?``, which stay distinct);
  ``true`` and ``false`` become ``?`` too.
- A ``-`` directly before a number is part of the literal unless it follows an
  identifier, a digit, ``)``, ``]`` or ``?``: ``x + -4121`` and ``x + 4597`` match
  (pgbench logs both), ``a-1`` stays ``a-?``.
- ``#`` starts a comment (MySQL) unless followed by ``>`` or ``-``, which keeps
  PostgreSQL's jsonb operators ``#>``, ``#>>`` and ``#-``; PostgreSQL's rare ``#``
  (bitwise xor) is lost to this.
- Backslash escapes inside ``'...'`` are honoured (MySQL, PostgreSQL ``E''``); a
  PostgreSQL standard string ending in a backslash (``'C:\\'``) is mis-read.
- A trailing ``;`` is dropped, so ``END;`` and ``END`` match.
- Not done (pt-query-digest does them): ``USE db`` -> ``use ?``, ``limit ?, ?`` ->
  ``limit ?``, ``order by ... asc`` -> ``order by ...``, ``union`` folding, ``call`` and
  mysqldump shortcuts.
- Nested ``/* /* */ */`` comments (PostgreSQL) and dollar quotes nesting another tag
  are not understood (RE2 has no recursion and no back-references). A comment between
  two words with no space around it (``union/**/select``) glues them together.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import accumulate

import duckdb
import pyarrow as pa

# Non-ASCII characters count as identifier characters: outside string literals SQL has
# no non-ASCII operators, and ASCII-only classes run twice as fast in RE2 as \pL or \pN.
_IDENT_CHAR = r"a-z0-9_$\x{80}-\x{10FFFF}"

# Step 1. Alternatives are tried leftmost-first at each position, which is what makes a
# single pass a tokenizer. Groups 1-3 are the only output: group 1 keeps a quoted
# identifier, group 2 emits "'" for a string, group 3 emits "$" for a dollar-quoted
# string; comments match no group and vanish. Closing quotes and comment ends are
# optional so that statements truncated by the logger still lose their literals.
_LEXICAL = (
    r"(?is)"
    r'("(?:[^"]|"")*"?)'  # "identifier", "" escapes a quote
    r"|(?:\b(?:[ebnx]|u&))?(')(?:[^'\\]|\\.|'')*'?"  # 'string', E'..', x'..', U&'..'
    r"|\B(\$)(?:[a-z_][a-z0-9_]*)?\$.*?(?:\$(?:[a-z_][a-z0-9_]*)?\$|$)"  # $$..$$, $t$..$t$
    r"|/\*.*?(?:\*/|$)"  # /* block comment */
    r"|--[^\n]*"  # -- line comment
    r"|#[^>\n-][^\n]*|#$"  # MySQL # comment, but not jsonb #> #>> #-
)

# Step 2. Only runs of 2+ characters and non-space whitespace are rewritten: replacing
# every single space by itself costs RE2 three times as much.
_WHITESPACE = r"\s\s+|[\t\n\r\f\v]"

# Step 3b. Numbers: 0x/0o/0b integers; decimals with optional fraction, exponent and
# PostgreSQL 16 digit separators. "$" alone is a dollar-quote marker from step 1.
_NUMBER = (
    r"0[xob][0-9a-f_]+"
    r"|(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:e[+-]?[0-9]+)?"
)
# RE2 has no look-behind, so the character before a literal is captured (group 1) and
# written back: a literal must not continue an identifier (t1, col_2, a$1). ")", "]"
# and "?" are excluded too so that "-" after them stays binary minus. Matches never
# consume the character after a literal, so "1,2" and "null,null" replace both.
_LITERALS = (
    r"'"  # string marker from step 1
    rf"|(^|[^{_IDENT_CHAR})\]?])"
    rf"(?:-?(?:{_NUMBER}|\$[0-9]*)|(?:null|true|false)\b)"
)

# Step 3c. A row is a parenthesised list that may hold one level of nested parentheses
# (now(), coalesce(?, ?)). Keeping only the first row is what pt-query-digest does for
# multi-row INSERTs, so a 3-row and a 500-row batch get one fingerprint.
_ROW = r"\((?:[^()]|\([^()]*\))*\)"
_MULTI_ROW = rf"(^|[^{_IDENT_CHAR}])(values ?{_ROW})(?: ?, ?{_ROW})+"

# Step 3d. pt-query-digest's spelling; "value" is MySQL's synonym of "values". A list
# holding anything but placeholders (a subquery, now()) is left alone.
_LIST = rf"(^|[^{_IDENT_CHAR}])(in|values?) ?\( ?\?(?: ?, ?\?)* ?\)"


# A statement's *key*: the statement with the contents of its plain strings and the values
# of its numbers folded ('abc' -> '', 2093743 -> 1), so that executions of one query that
# differ only in their literals share a key. The fingerprint of the key is the fingerprint of
# the statement (every rule above depends on where a digit or a string is, never on its
# value; tests check it on every real log and on generated statements), so a load computes
# the regular-expression chain once per key instead of once per row. Statements where a
# digit's context can change in step 1 (comments, quoted identifiers, dollar quotes,
# backslash escapes) are their own key. The character class before a number is the one of
# _LITERALS plus upper case and "'": a number after an identifier, ")", "]" or "?" is not a
# literal, and one right after a string is not replaced either (the string's match took the
# character before it).
#: the statement key (used by the Spark engine too): its unsafe marks, strings and numbers
KEY_UNSAFE = ('"', "#", "\\", "$", "/*", "--")
KEY_STRING = r"'[^'\\]*'"
KEY_NUMBER = rf"(^|[^A-Z{_IDENT_CHAR})\]?'])[1-9][0-9]*"


def _sql_string(text: str) -> str:
    """Quote ``text`` as a SQL string literal (for the constant patterns above).

    Parameters
    ----------
    text : str
        Pattern or replacement text.

    Returns
    -------
    str
        ``text`` between single quotes, with embedded quotes doubled.
    """
    return "'" + text.replace("'", "''") + "'"


def _outside_identifiers(expr: str) -> str:
    """SQL expression applying steps 3a-3d to the text outside quoted identifiers.

    Parameters
    ----------
    expr : str
        SQL expression of type VARCHAR.

    Returns
    -------
    str
        SQL expression.
    """
    expr = f"lower({expr})"
    expr = f"regexp_replace({expr}, {_sql_string(_LITERALS)}, '\\1?', 'g')"
    expr = f"regexp_replace({expr}, {_sql_string(_MULTI_ROW)}, '\\1\\2', 'g')"
    return f"regexp_replace({expr}, {_sql_string(_LIST)}, '\\1\\2(?+)', 'g')"


def _build_macro() -> str:
    """Assemble the ``create or replace temp macro fingerprint(s)`` statement.

    Returns
    -------
    str
        The SQL statement.
    """
    tokens = f"regexp_replace(s, {_sql_string(_LEXICAL)}, '\\1\\2\\3', 'g')"
    spaced = f"regexp_replace({tokens}, {_sql_string(_WHITESPACE)}, ' ', 'g')"
    # Lambda parameter names are unusual so that they cannot shadow, or be shadowed by,
    # a column of the table the macro is called on.
    pieces = (
        f"list_transform(string_split({spaced}, '\"'), "
        f"lambda fp_piece, fp_index: CASE WHEN fp_index % 2 = 1 "
        f"THEN {_outside_identifiers('fp_piece')} ELSE fp_piece END)"
    )
    joined = f"array_to_string({pieces}, '\"')"
    # Trailing ";" is dropped with trailing spaces so that "END;" and "END ;" match "END".
    return f"create or replace temp macro fingerprint(s) as rtrim(ltrim({joined}), ' ;')"


FINGERPRINT_MACRO: str = _build_macro()

#: ``fingerprint_key(s)``: see KEY_UNSAFE above; fingerprint(fingerprint_key(s)) = fingerprint(s)
_EMPTY_STRING = _sql_string("''")
KEY_MACRO: str = (
    "create or replace temp macro fingerprint_key(s) as "
    f"case when {' or '.join(f'contains(s, {_sql_string(u)})' for u in KEY_UNSAFE)} "
    "then s else regexp_replace("
    f"regexp_replace(s, {_sql_string(KEY_STRING)}, {_EMPTY_STRING}, 'g'), "
    f"{_sql_string(KEY_NUMBER)}, '\\11', 'g') end"
)

#: the statement key's implementation: ``native`` (analysis/statement_key.c, one pass over
#: the Arrow buffers; see :func:`statement_keys`) or ``duckdb`` (the macro above, RE2 inside
#: DuckDB); unset, the native one where the install compiled it
KEY_ENV = "POSTMORTEM_STATEMENT_KEY"
KEY_IMPLEMENTATIONS = ("native", "duckdb")


def key_implementation() -> str:
    """The implementation of the statement key that loads use.

    Returns
    -------
    str
        ``native`` when the compiled ``analysis.statement_key`` is importable and
        :data:`KEY_ENV` does not say ``duckdb``, otherwise ``duckdb`` (the macro).
    """
    if os.environ.get(KEY_ENV, "").strip().lower() == "duckdb":
        return "duckdb"
    try:
        from analysis import statement_key  # noqa: F401
    except ImportError:
        return "duckdb"
    return "native"


def statement_keys(
    statements: pa.ChunkedArray, *, keyed: pa.ChunkedArray | None = None
) -> pa.ChunkedArray:
    """``fingerprint_key`` of each statement, computed in one pass over its Arrow buffers.

    Two RE2 passes a row inside DuckDB cost 57% of DuckDB's bare store of the same file;
    Polars' Rust regex over the same buffers about half of that, the capture group of
    KEY_NUMBER most of it. The C file reads each statement once and writes its key, at
    several times Polars' speed, with the GIL released.

    Parameters
    ----------
    statements : pyarrow.ChunkedArray
        Statements (string or large_string); nulls stay null.
    keyed : pyarrow.ChunkedArray of bool, optional
        Which rows need a key (without nulls); the others get null.

    Returns
    -------
    pyarrow.ChunkedArray
        The keys as large_string, chunked as ``statements`` is (a table's columns keep one
        layout), byte-identical to the macro's.
    """
    starts = accumulate((len(c) for c in statements.chunks), initial=0)
    jobs = [
        (chunk, None if keyed is None else keyed.slice(at, len(chunk)).combine_chunks())
        for chunk, at in zip(statements.chunks, starts, strict=False)
    ]
    if len(jobs) < 2:
        return pa.chunked_array([_keys_of(*job) for job in jobs], pa.large_string())
    # the C part runs without the GIL: the chunks are keyed side by side, one per core
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        keyed_chunks = list(pool.map(lambda job: _keys_of(*job), jobs))
    return pa.chunked_array(keyed_chunks, pa.large_string())


def _keys_of(chunk: pa.Array, keyed: pa.Array | None = None) -> pa.Array:
    """The keys of one Arrow array of statements (see :func:`statement_keys`)."""
    import pyarrow.compute as pc

    from analysis import statement_key

    chunk = chunk.cast(pa.large_string())
    n = len(chunk)
    _, offsets, data = chunk.buffers()
    data = data if data is not None else pa.py_buffer(b"")
    # a key is never longer than its statement; Arrow's pool reuses the pages it frees
    keys_data = pa.allocate_buffer(max(data.size, 1))
    keys_offsets = pa.allocate_buffer((n + 1) * 8)
    length = statement_key.keys(
        data, memoryview(offsets)[chunk.offset * 8 :], n, keys_data, keys_offsets
    )
    mask = None
    if chunk.null_count or keyed is not None:
        valid = pc.is_valid(chunk)
        if keyed is not None:
            valid = pc.and_(valid, keyed)
        mask = None if valid.false_count == 0 else valid.buffers()[1]
    return pa.LargeStringArray.from_buffers(n, keys_offsets, keys_data.slice(0, length), mask)


# DuckDB connections are not safe for concurrent use; one private connection, used
# under a lock, avoids paying for a new database on every call.
_lock = threading.Lock()
_connection: duckdb.DuckDBPyConnection | None = None


#: the native key as a function of SQL (an Arrow UDF), beside the macro ``fingerprint_key``
NATIVE_KEY_FUNCTION = "fingerprint_key_native"


def _native_key_udf(statements: pa.Array | pa.ChunkedArray) -> pa.Array:
    """:func:`statement_keys` of one vector DuckDB hands over (the C part runs without the
    GIL, so DuckDB's threads key their vectors side by side)."""
    if isinstance(statements, pa.Array):
        return _keys_of(statements)
    return statement_keys(statements).combine_chunks()


def key_sql(expr: str) -> str:
    """The SQL of the statement key of ``expr``, by the implementation that loads use.

    Parameters
    ----------
    expr : str
        SQL expression of type VARCHAR (a column name or an expression of fixed text).

    Returns
    -------
    str
        ``fingerprint_key_native(expr)`` (the C key, for a query whose rows never reach
        Python: ``read_json`` into a table, Parquet in place) or ``fingerprint_key(expr)``.
    """
    name = NATIVE_KEY_FUNCTION if key_implementation() == "native" else "fingerprint_key"
    return f"{name}({expr})"


def install(con: duckdb.DuckDBPyConnection) -> None:
    """Create the temporary macros ``fingerprint(s)`` and ``fingerprint_key(s)`` on a
    connection, and the native key's function where it is built.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Connection to install into; the macros live as long as the connection.
    """
    con.execute(FINGERPRINT_MACRO)
    con.execute(KEY_MACRO)
    try:
        from analysis import statement_key  # noqa: F401
    except ImportError:
        return
    con.create_function(
        NATIVE_KEY_FUNCTION,
        _native_key_udf,
        ["VARCHAR"],
        "VARCHAR",
        type="arrow",
        null_handling="special",
        side_effects=False,
    )


def fingerprint(statement: str | None) -> str | None:
    """Fingerprint one statement with the ``fingerprint`` macro.

    Parameters
    ----------
    statement : str or None
        SQL statement as logged.

    Returns
    -------
    str or None
        The fingerprint; ``None`` for ``None``, ``""`` for ``""``.
    """
    global _connection
    with _lock:
        if _connection is None:
            _connection = duckdb.connect(":memory:")
            install(_connection)
        # Bound, never formatted into the SQL: the statement is untrusted log text.
        row = _connection.execute("select fingerprint($1::varchar)", [statement]).fetchone()
    assert row is not None
    return row[0]
