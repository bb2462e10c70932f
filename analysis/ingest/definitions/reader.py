"""Source definitions: declarative readers for the logs that real systems write.

A *definition* is a YAML mapping (no code) that says where the records of a log are, which
of them are authentication attempts, and where each canonical column is. The presets under
``analysis/ingest/definitions/presets/`` are definitions (Okta, Auth0, Keycloak, CloudTrail, Entra
ID, ECS, OpenTelemetry, access logs, HAProxy, Envoy, MySQL's error log); a user's own is given as
``--auth-format FILE.yaml`` or under ``auth_format`` in the ``--config`` file.

Everything happens in DuckDB: a JSON file (JSON Lines, or one document such as
``{"Records": [...]}``) is unnested along the ``records`` path with ``json_extract``; a text
log is matched line by line with one regular expression whose named groups (and, with
``keyvalues``, the ``key=value`` pairs of one group) become a JSON object; then every column
is one ``json_extract_string`` of its path, with value maps, constants and the timestamp
format applied in SQL. Every value of a definition is bound as a parameter. Records that are
not attempts are counted per value of the attempt field (``rows_skipped``), never rejected;
the rest go through the same validation as every other input (:func:`validate.store`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from analysis import db, kinds
from analysis.errors import UnreadableFile
from analysis.ingest import lines, validate
from analysis.ingest.definitions.columns import Binder, ts_sql, value_sql
from analysis.ingest.definitions.records import (
    CsvHeader,
    csv_header,
    document_chunk,
    is_document,
    records_sql,
)
from analysis.ingest.definitions.schema import (
    SKIP,
    Column,
    Definition,
)
from analysis.ingest.definitions.signature import sniffer_for
from analysis.kinds import RAW_KEEP_CHARS, FileResult, Kind, ReadOptions, Records

__all__ = ["is_document", "load_definition", "reader_for", "skip_kinds", "sniffer_for"]


#: how many of each epoch unit make a second
_EPOCH_PER_SECOND = {"epoch_s": 1, "epoch_ms": 10**3, "epoch_us": 10**6, "epoch_ns": 10**9}
#: the times a sign-in log can hold: a unit that puts a file's times outside is the wrong one
EARLIEST = datetime(1990, 1, 1)


def _plausible(times: tuple[datetime, datetime]) -> bool:
    return EARLIEST <= times[0] and times[1] <= datetime.now(UTC).replace(tzinfo=None) + timedelta(
        days=1
    )


def _fits(epoch: datetime, raw: list[float], per_second: int) -> bool:
    """Whether the raw numbers, read as ``per_second`` to a second, are plausible times."""
    try:
        return _plausible(tuple(epoch + timedelta(seconds=r / per_second) for r in raw))
    except OverflowError:
        return False


def _check_epoch_unit(
    con: duckdb.DuckDBPyConnection, d: Definition, kind: Kind, path: Path, res: FileResult
) -> None:
    """Refuse the load (rolled back: nothing is written) when the definition's epoch unit
    puts the file's times before 1990 or after tomorrow, naming the unit that fits: epoch
    seconds read as milliseconds are January 1970, silently, otherwise. The middle half of
    the times decides, so that one odd record does not cost the file."""
    units = [u for u in d.timestamps if u in _EPOCH_PER_SECOND]
    yearless = [f for f in d.timestamps if f not in _EPOCH_PER_SECOND and f != "iso"]
    yearless = [f for f in yearless if not any(y in f for y in ("%Y", "%y", "%G", "%s"))]
    if not (units or yearless) or not res.rows_loaded:
        return
    row = db.one(
        con,
        f"select quantile_disc(ts, 0.25), quantile_disc(ts, 0.75) from {kind.table} "  # noqa: S608 - a fixed name
        "where source_id = ?",
        [res.source_id],
    )
    if row is None or row[0] is None or _plausible((row[0], row[1])):
        return
    if not units:
        raise UnreadableFile(
            f"{path}: timestamp {yearless[0]!r} has no year, so its times fall in "
            f"{row[0]:%Y}; put the year in the format (%Y) ({d.name})"
        )
    epoch = datetime(1970, 1, 1)
    raw = [(t - epoch) / timedelta(seconds=1) * _EPOCH_PER_SECOND[units[0]] for t in row]
    fits = [u for u, per in _EPOCH_PER_SECOND.items() if _fits(epoch, raw, per)]
    hint = f"`timestamp: {fits[0]}` fits them" if fits else "no epoch unit fits them"
    raise UnreadableFile(
        f"{path}: timestamp {units[0]} puts its times at {row[0]:%Y-%m-%d} to "
        f"{row[1]:%Y-%m-%d}, before 1990 or after tomorrow; {hint} ({d.name})"
    )


def _stage_sql(
    d: Definition, bind: Binder, *, document: bool, header: CsvHeader | None = None
) -> tuple[str, list[str]]:
    """The records with ``f_<column>`` text fields and ``skip_kind`` (null: an attempt)."""
    kind = kinds.KINDS[d.kind]
    cols = []
    for n in kind.fields:
        col = d.columns.get(n, Column())
        # an outcome the map does not know stays as it is: its reject names it
        v = value_sql(col, bind, keep_unmapped=n == "outcome")
        if n == "ts":
            v = ts_sql(d, v, bind)
        cols.append(f"{v} as {db.quote_identifier('f_' + n)}")
    extras = list(d.extras)
    for n in extras:
        cols.append(f"{value_sql(d.extras[n], bind)} as {db.quote_identifier('f_' + n)}")
    attempt = "true"
    what = "null::varchar"
    counted = "_a"
    if d.attempt_fields:
        what = value_sql(Column(paths=d.attempt_fields), bind, every=True)
        tests = []
        if d.attempt_values:
            tests.append(f"list_contains({bind(list(d.attempt_values))}::varchar[], x)")
        if d.attempt_prefixes:
            tests.append(
                f"len(list_filter({bind(list(d.attempt_prefixes))}::varchar[], "
                "lambda p: starts_with(x, p))) > 0"
            )
        if d.attempt_suffixes:
            tests.append(
                f"len(list_filter({bind(list(d.attempt_suffixes))}::varchar[], "
                "lambda p: ends_with(rtrim(x, '/'), p))) > 0"
            )
        match = " or ".join(tests) if tests else "true"
        if d.attempt_exclude:
            match = (
                f"({match}) and not list_contains({bind(list(d.attempt_exclude))}::varchar[], x)"
            )
        # an array value (ECS event.category) is an attempt when any element is
        elements = (
            "case when starts_with(_a, '[') then "
            "coalesce(try(json_extract_string(_a::json, '$[*]')), [_a]) else [_a] end"
        )
        attempt = f"_a is null or len(list_filter({elements}, lambda x: {match})) > 0"
        counted = f"array_to_string({elements}, ',')"
    counted_missing = "'(none)'"
    # a record without the field is not an attempt, unless the definition only excludes
    # values (every record is one but those): then it is, and its validation says what it lacks
    only_excludes = d.attempt_exclude and not (
        d.attempt_values or d.attempt_prefixes or d.attempt_suffixes
    )
    positive = bool(d.attempt_fields and not only_excludes)
    if d.count_by:
        counted = f"coalesce({value_sql(Column(paths=d.count_by), bind)}, '(none)')"
        counted_missing = "_counted"
    if d.skip_label:
        counted = counted_missing = bind(d.skip_label)
    skipped_outcomes = [k for k, v in d.columns["outcome"].mapping if v == SKIP]
    outcome_f = db.quote_identifier("f_outcome")
    sql = f"""
        with r as (
            {records_sql(d, bind, document=document, header=header)}
        ), f as (
            select line, raw, pre_reason, skip_kind, {what} as _a, {counted} as _counted,
                   {", ".join(cols)}
            from r
        )
        select line, raw, pre_reason,
               * exclude (line, raw, pre_reason, skip_kind, _a, _counted),
               case when skip_kind is not null then skip_kind
                    when pre_reason is not null then null
                    when _a is null and {bind(positive)} then {counted_missing}
                    when not coalesce({attempt}, false) then _counted
                    when {bind(bool(skipped_outcomes))} and lower({outcome_f}) = {bind(SKIP)}
                        then 'outcome not final'
               end as skip_kind
        from f
    """  # noqa: S608 - identifiers are checked column names, values are bound
    return sql, extras


def load_definition(
    con: duckdb.DuckDBPyConnection,
    d: Definition,
    kind: Kind,
    path: Path,
    res: FileResult,
    opts: ReadOptions,
) -> None:
    """Load one file as the definition says: attempts to ``auth_events``, bad records to
    ``rejects``, the others counted in ``res.skipped`` by kind."""
    lines.refuse_binary(path, f"a {d.title} log")
    if kind.name != d.kind:
        raise UnreadableFile(f"{path}: {d.name} logs hold {d.kind}, not {kind.name}")
    stage = _staging(d, path, opts)
    d, document, extras = stage.definition, stage.document, stage.extras
    for staged in _staged_chunks(con, stage, path):
        # the staged records are the next query's _chunk (see db.scratch_sql)
        skipped = db.scratch_sql(
            con,
            "select skip_kind, count(*) from _chunk where skip_kind is not null group by 1",
            _chunk=staged,
        ).fetchall()
        for what, n in skipped:
            res.skipped[what] = res.skipped.get(what, 0) + n
            res.rows_skipped += n
        cols = ", ".join(
            db.quote_identifier("f_" + n) for n in [*kinds.KINDS[d.kind].fields, *extras]
        )
        rec = Records(
            f"select line, raw, pre_reason, {cols} from _chunk where skip_kind is null",  # noqa: S608
            {},
            extras,
        )
        validate.store(con, kind, res, rec, opts.tz, chunk=staged)
        if opts.progress:
            opts.progress(f"{path.name}: {res.rows_read + res.rows_skipped:,} records")
    if d.input == "json" and res.rows_read and res.not_json == res.rows_read:
        raise UnreadableFile(
            f"{path}: no record is a JSON object; is it a {d.title} log ({d.name})?"
        )
    res.rows_read += res.rows_skipped
    res.rows_rejected = res.rows_read - res.rows_loaded - res.rows_skipped
    _check_epoch_unit(con, d, kind, path, res)
    if document:
        res.notes.append("one JSON document: rejects are numbered by record, not by line")
    if res.rows_read and res.rows_loaded == 0 and res.rows_rejected == 0:
        if d.login_path and d.skip_label and res.skipped.get(d.skip_label):
            # requests, none of them to a login path: the service's own path is the likely cause
            res.notes.append(
                "no record is an attempt: no request is to a login path; name the path your "
                "service logs in on with --login-path (repeatable), e.g. --login-path /api/auth"
            )
        else:
            article = "an" if d.title[:1].lower() in "aeiou" else "a"
            res.notes.append(f"no record is an attempt: is this {article} {d.title} ({d.name})?")
    if res.skipped:
        parts = sorted(res.skipped.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{k}: {n:,}" for k, n in parts[:12])
        more = f", and {len(parts) - 12} other kinds" if len(parts) > 12 else ""
        noun = "record is not an attempt" if res.rows_skipped == 1 else "records are not attempts"
        res.notes.append(f"{res.rows_skipped:,} {noun} ({shown}{more})")


@dataclasses.dataclass(frozen=True)
class _Staging:
    """The staging query of a definition for one file, and what it was built from."""

    definition: Definition
    document: bool
    extras: list[str]
    sql: str
    values: dict[str, object]


def _staging(d: Definition, path: Path, opts: ReadOptions) -> _Staging:
    """The query that stages ``path``'s records as ``d`` reads them with the load's options."""
    d = _with_login_paths(d, opts)
    document = d.input == "json" and is_document(path)
    header = csv_header(path, d) if d.input == "csv" else None
    bind = Binder()
    sql, extras = _stage_sql(d, bind, document=document, header=header)
    return _Staging(d, document, extras, sql, {**bind.values, "keep": RAW_KEEP_CHARS})


def _staged_chunks(
    con: duckdb.DuckDBPyConnection, stage: _Staging, path: Path
) -> Iterator[pa.Table]:
    """Each chunk of ``path`` staged: its records with their fields and skip kind."""
    for chunk in document_chunk(path) if stage.document else lines.iter_chunks(path):
        table = db.batched(chunk.table)
        yield db.scratch_sql(con, stage.sql, stage.values, _chunk=table).to_arrow_table()


def _with_login_paths(d: Definition, opts: ReadOptions) -> Definition:
    """The definition with the load's ``--login-path`` prefixes as its attempt rule, when
    its attempts are requests to login paths."""
    if opts.login_paths and d.login_path:
        return dataclasses.replace(
            d, attempt_values=(), attempt_prefixes=opts.login_paths, attempt_suffixes=()
        )
    return d


def skip_kinds(
    con: duckdb.DuckDBPyConnection, d: Definition, path: Path, opts: ReadOptions
) -> dict[int, str]:
    """Why each record of ``path`` that is not an attempt is skipped, by record number, as
    :func:`load_definition` counts them (for a preview: nothing is written)."""
    out: dict[int, str] = {}
    for staged in _staged_chunks(con, _staging(d, path, opts), path):
        found = db.scratch_sql(
            con, "select line, skip_kind from _chunk where skip_kind is not null", _chunk=staged
        ).fetchall()
        out.update(dict(found))
    return out


def reader_for(d: Definition) -> Callable[..., None]:
    """The read function of a definition, for :mod:`analysis.ingest.registry`."""

    def read(
        con: duckdb.DuckDBPyConnection, kind: Kind, path: Path, res: FileResult, opts: ReadOptions
    ) -> None:
        load_definition(con, d, kind, path, res, opts)

    return read
