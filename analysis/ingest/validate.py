"""Validation: one query per kind of input, shared by every format, that types the text
fields of a batch of records and gives each row a home in its table or a reason in
``rejects``."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from analysis import db, fingerprint
from analysis.config import TIMELINE_KINDS
from analysis.kinds import AUTH, QUERIES, TIMELINE, FileResult, Kind, Records

# --- validation: one query per kind, shared by every format ---


#: a time of day followed by a zone: Z, an offset, or UTC/GMT
_ZONED = r".*\d:\d\d(:\d\d(\.\d*)?)?\s*([zZ]|[+-]\d\d(:?\d\d)?|UTC|GMT)"


def ts_expr(col: str, *, utc: bool) -> str:
    """SQL turning a text field into a UTC ``timestamp`` (NULL when it cannot be parsed).

    With ``utc`` (source_timezone UTC) one cast reads ISO text with or without a zone, and
    only what it cannot read is tried as epoch seconds or milliseconds; otherwise a text
    without a zone is read in ``$tz``.
    """
    t = f"trim({col})"
    # a zone abbreviation means one offset (db.ZONE_OFFSETS); only text ending in a capital
    # letter other than Z can hold one, so ISO text pays two string functions, no regex
    v = f"(case when right({t}, 1) between 'A' and 'Y' then zone_abbr_fixed({t}) else {t} end)"
    # epochs: seconds, or by their size milliseconds, microseconds or nanoseconds
    epoch = rf"""
            when regexp_full_match({v}, '[+-]?\d+(\.\d+)?([eE][+-]?\d+)?') then
                try(to_timestamp(case when abs(try_cast({v} as double)) >= 1e17
                                      then try_cast({v} as double) / 1e9
                                      when abs(try_cast({v} as double)) >= 1e14
                                      then try_cast({v} as double) / 1e6
                                      when abs(try_cast({v} as double)) >= 1e11
                                      then try_cast({v} as double) / 1000
                                      else try_cast({v} as double) end))"""
    # what the cast cannot read: a comma before the fraction (Java logs) and CLF
    # (18/Nov/2018:21:34:30 +0000, access logs)
    comma = rf"regexp_replace({v}, '(\d:\d\d),(\d)', '\1.\2')"
    clf = f"try_strptime({v}, '%d/%b/%Y:%H:%M:%S %z')"
    if utc:
        read = rf"""
        timezone('UTC', coalesce(try_cast({v} as timestamptz), case
            when {col} is null then null {epoch}
            else coalesce(try_cast({comma} as timestamptz), {clf})
        end))"""
        # ISO text in UTC as logs write it (a digit first, Z last: nothing to trim, no zone
        # name) is cast as it is, before any string function (a quarter of the expression's
        # cost), and to a plain timestamp, which reads the Z as UTC without the time zone
        # library (0.3 s for 5.5M rows against 0.7 s); what that cast cannot read takes the
        # whole expression
        return (
            f"case when ends_with({col}, 'Z') and ascii({col}) between 48 and 57 "
            f"then coalesce(try_cast({col} as timestamp), {read}) "
            f"else {read} end"
        )
    return rf"""
        timezone('UTC', case
            when {col} is null then null {epoch}
            when {clf} is not null then {clf}
            when regexp_full_match({comma}, '{_ZONED}') then try_cast({comma} as timestamptz)
            else try(timezone($tz, try_cast({comma} as timestamp)))
        end)"""


def validation_sql(
    kind: Kind, rec: Records, *, utc: bool, native_key: bool = False, keyed_column: bool = False
) -> str:
    """The query from the records to ``_checked``: typed columns and a reject reason.

    Of a query log, ``fp_key`` is the statement's key (the ``fingerprint_key`` macro) where
    the row needs a fingerprint; with ``native_key`` it is left to the caller, and ``keyed``
    says which rows need one (see :func:`with_native_keys`); with ``keyed_column`` the
    records carry every statement's key as ``fp_key`` already."""
    extras = rec.extras
    f = {n: db.quote_identifier("f_" + n) for n in list(kind.fields) + extras}
    typed = [f"{ts_expr(f['ts'], utc=utc)} as ts"]
    # tidy_text(x) is null exactly when x is null or trim(x) = ''
    checks = [f"when tidy_text({f['ts']}) is null then 'missing required field ts'"]
    checks.append(
        f"when ts is null then 'unparseable or impossible time: ' || left({f['ts']}, 60)"
    )
    for n in kind.fields[1:]:
        col = db.quote_identifier(n)
        if n in kind.numeric:
            typed.append(f"try_cast(tidy_text({f[n]}) as double) as {col}")
        elif n == "outcome":
            typed.append(f"lower(trim({f[n]})) as {col}")
        elif n == "kind" and kind is TIMELINE:
            typed.append(f"lower(trim({f[n]})) as {col}")
        else:
            typed.append(f"tidy_text({f[n]}) as {col}")
        if n in kind.required:
            checks.append(f"when tidy_text({f[n]}) is null then 'missing required field {n}'")
        if n in kind.numeric:
            checks.append(
                f"when tidy_text({f[n]}) is not null and {col} is null "
                f"then 'non-numeric {n}: ' || left({f[n]}, 60)"
            )
            checks.append(f"when {col} < 0 then 'negative {n}: ' || {f[n]}")
            checks.append(f"when isinf({col}) or isnan({col}) then 'non-finite {n}'")
    if kind is AUTH:
        checks.append(
            "when outcome not in ('success', 'failure') then 'unknown outcome: ' || "
            + f"left({f['outcome']}, 60)"
        )
    if kind is QUERIES:
        checks.append(
            "when statement is null and fingerprint is null "
            "then 'missing required field statement or fingerprint'"
        )
        checks.append(
            'when "rows" is not null and "rows" <> floor("rows") '
            "then 'non-integer rows: ' || f_rows"
        )
    if kind is TIMELINE:
        allowed = ", ".join("'" + k + "'" for k in TIMELINE_KINDS)  # fixed constants
        checks.append(
            f"when kind not in ({allowed}) then 'unknown timeline kind: ' || left(f_kind, 60)"
        )
    for n in extras:
        typed.append(f"{f[n]} as {db.quote_identifier(n)}")
    kept = _kept_columns(kind, extras, native_key=native_key, keyed_column=keyed_column)
    raw_fields = ", ".join(f.values()) + (", fp_key" if keyed_column else "")
    return f"""
        with _rec as (
            {rec.sql}
        ), typed as (
            select line, raw, pre_reason, {raw_fields},
                   {", ".join(typed)}
            from _rec
        ), final as (
            select *,
                   case when pre_reason is not null then pre_reason
                        {" ".join(checks)}
                   end as reason
            from typed
        )
        select {", ".join(kept)} from final
    """  # noqa: S608 - identifiers are from the fixed field lists or checked


def _kept_columns(
    kind: Kind, extras: list[str], *, native_key: bool, keyed_column: bool
) -> list[str]:
    """The columns of ``_checked`` (see :func:`validation_sql`)."""
    kept = ["line"] + [db.quote_identifier(n) for n in list(kind.fields) + extras] + ["reason"]
    # the raw text is carried for rejects only, and the fingerprint's key for rows that
    # need one: materializing a copy of every line cost more than all the parsing
    kept.append("case when reason is not null then raw end as raw")
    kept.append("pre_reason in ('broken JSON', 'not a JSON object') as not_json")
    if kind is QUERIES and keyed_column:
        kept.append("case when reason is null and fingerprint is null then fp_key end as fp_key")
    elif kind is QUERIES and native_key:
        kept.append("reason is null and fingerprint is null as keyed")
    elif kind is QUERIES:
        kept.append(
            "case when reason is null and fingerprint is null "
            f"then {fingerprint.key_sql('statement')} end as fp_key"
        )
    return kept


def store(
    con: duckdb.DuckDBPyConnection,
    kind: Kind,
    res: FileResult,
    rec: Records,
    tz: str,
    *,
    chunk: pa.Table | None = None,
) -> None:
    """Validate the records and move each row into the kind's table or ``rejects``.

    ``chunk`` is the Arrow table of numbered lines that the records' query calls ``_chunk``
    (see :func:`analysis.db.scratch_sql`).
    """
    extras = rec.extras
    utc = tz == "UTC"
    values = dict(rec.params)
    if not utc:
        values["tz"] = tz
    native = kind is QUERIES and fingerprint.key_implementation() != "duckdb"
    checked = db.scratch_sql(
        con, validation_sql(kind, rec, utc=utc, native_key=native), values, _chunk=chunk
    ).to_arrow_table(db.SCRATCH_BATCH_ROWS)
    if native:
        checked = with_native_keys(checked)
    add_extra_columns(con, kind, extras)
    target, select = insert_columns(kind, extras, fingerprint="k.fingerprint")
    source = "_checked c"
    if kind is QUERIES:
        fingerprint_keys(con, checked)
        source += " left join _fp_keys k on c.fp_key = k.fp_key"
    db.scratch_sql(
        con,
        f"insert into {kind.table} ({target}) "  # noqa: S608 - fixed table, checked columns
        f"select $sid, c.line, {select} from {source} where c.reason is null",
        {"sid": res.source_id},
        _checked=checked,
    )
    db.scratch_sql(
        con,
        "insert into rejects select $sid, $file, line, raw, reason "
        "from _checked where reason is not null",
        {"sid": res.source_id, "file": res.path},
        _checked=checked,
    )
    counts = db.scratch_sql(
        con,
        "select count(*), count(*) filter (where reason is null), "
        "count(*) filter (where not_json) from _checked",
        _checked=checked,
    ).fetchall()[0]
    res.rows_read += counts[0]
    res.rows_loaded += counts[1]
    res.not_json += counts[2]


def with_native_keys(checked: pa.Table) -> pa.Table:
    """``checked`` with ``fp_key`` in place of ``keyed``: the statement's key where a row
    needs a fingerprint (:func:`analysis.fingerprint.statement_keys`), else null.

    The table is already Arrow (the validation's result): the key reads its statements where
    they are and adds one column, with no copy of the rest of the rows.
    """
    keys = fingerprint.statement_keys(checked.column("statement"), keyed=checked.column("keyed"))
    return checked.drop_columns(["keyed"]).append_column("fp_key", keys)


def add_extra_columns(con: duckdb.DuckDBPyConnection, kind: Kind, extras: list[str]) -> None:
    """Add a text column to the kind's table for each extra field it does not have yet."""
    have = set(db.columns_of(con, kind.table))
    for n in extras:
        if n not in have:
            con.execute(
                f"alter table {kind.table} add column {db.quote_identifier(n)} varchar"  # noqa: S608
            )


def insert_columns(kind: Kind, extras: list[str], *, fingerprint: str) -> tuple[str, str]:
    """The target columns of an insert of validated rows ``c`` into the kind's table (after
    ``source_id, line``), and their values; ``fingerprint`` is the expression of a
    statement's fingerprint when its row came without one."""
    cols = list(kind.fields) + extras
    select = []
    for n in cols:
        if n == "rows":
            select.append('try_cast(c."rows" as bigint) as "rows"')
        elif n == "fingerprint":
            select.append(f"coalesce(c.fingerprint, {fingerprint}) as fingerprint")
        else:
            select.append(f"c.{db.quote_identifier(n)}")
    target = ", ".join(["source_id", "line"] + [db.quote_identifier(n) for n in cols])
    return target, ", ".join(select)


def fingerprint_keys(con: duckdb.DuckDBPyConnection, checked: pa.Table) -> None:
    """Fingerprint each statement key of ``_checked`` not yet in ``_fp_keys``.

    Statements that differ only in their literals share a key (see
    :data:`analysis.fingerprint.KEY_MACRO`), so the regular-expression chain runs once per
    key of a load, not once per row: 15 keys for the sample's 2.5M statements.
    """
    con.execute("create temp table if not exists _fp_keys (fp_key varchar, fingerprint varchar)")
    db.scratch_sql(
        con,
        "insert into _fp_keys select fp_key, fingerprint(fp_key) from "
        "(select distinct fp_key from _checked where fp_key is not null) "
        "where fp_key not in (select fp_key from _fp_keys)",
        _checked=checked,
    )
