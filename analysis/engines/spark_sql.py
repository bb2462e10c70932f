"""The figures' DuckDB SQL, translated for Spark: one text per query, two engines.

``analysis/sql/*.sql`` and the figures' inline queries are written for DuckDB. With
``--engine spark`` the ones that read rows run on Spark instead, translated here by sqlglot
and a few rewrites of constructs whose meaning sqlglot's generic translation changes:

- ``time_bucket(width, ts[, origin])`` becomes Spark 4.2's ``time_bucket`` with DuckDB's
  default origin (2000-01-03, a Monday) made explicit; sqlglot would write ``date_bin``,
  which Spark lacks, and Spark's own default origin (1970-01-01) differs for widths that do
  not divide a day;
- ``$x::interval`` (a bound text such as ``1 minutes``) becomes a day-time interval of the
  same seconds (``make_dt_interval``): Spark's ``time_bucket`` refuses a calendar interval;
- ``quantile_cont(x, q)`` becomes an exact quantile with DuckDB's very bits: the group's
  values sorted, the two nearest ranks blended as DuckDB blends them (see :data:`_LEVEL`);
  never ``percentile_approx``, and not Spark's ``percentile``, whose blend differs in the
  last bit; sqlglot would write a two-argument ``percentile_cont`` that Spark rejects;
- ``range(lo, hi, step)`` (end excluded) becomes ``sequence(lo, hi - 1 µs, step)`` (end
  included) without sqlglot's guard, which compares an interval with 0;
- ``a / b`` becomes ``try_divide(double, double)``: DuckDB divides decimals and integers as
  doubles and gives NULL for a division by zero, where Spark keeps decimals (rounded to their
  scale) and, in ANSI mode, fails;
- ``any_value(x)`` keeps DuckDB's meaning (the first non-null value);
- the DuckDB macros the query calls (``is_system_failure``, ``period_of``…) are expanded from
  their definitions in the connection, so they are written once, in
  :mod:`analysis.figures.metrics`.

Functions listed in :data:`LOCAL_ONLY` never go to Spark: ``pseudonym`` takes the secret
key, ``iso_text`` and ``getvariable`` are DuckDB's. A query that uses them on the rows is
split: its common table expressions that can run on Spark do, and DuckDB runs the rest over
their (small) results (see :func:`split`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import sqlglot
from sqlglot import exp

from analysis.errors import TranslationError

#: functions that stay in DuckDB: the pseudonym key never leaves this machine
LOCAL_ONLY = frozenset({"pseudonym", "iso_text", "getvariable"})
#: DuckDB's origin of time buckets narrower than a month
DUCKDB_ORIGIN = "2000-01-03 00:00:00"
#: a bound interval text as times.bucket_interval writes it (``15 minutes``)
_INTERVAL_TEXT = re.compile(
    r"\s*(\d+(?:\.\d+)?)\s*(microseconds?|milliseconds?|seconds?|minutes?|hours?|days?)\s*",
    re.I,
)
_UNIT_SECONDS = {
    "microsecond": 1e-6,
    "millisecond": 1e-3,
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
}
#: the suffix of the bound value that holds an interval parameter's seconds
SECONDS_SUFFIX = "__seconds"


def interval_seconds(text: str) -> float:
    """Seconds of an interval text such as ``1 minutes`` or ``15 minutes``."""
    m = _INTERVAL_TEXT.fullmatch(str(text))
    if not m:
        raise TranslationError(f"interval {text!r} is not a number and a unit (e.g. 15 minutes)")
    unit = m.group(2).lower().rstrip("s")
    return float(m.group(1)) * _UNIT_SECONDS[unit]


def macros(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[list[str], exp.Expression]]:
    """The scalar macros defined on a connection: name -> (parameter names, body)."""
    rows = con.execute(
        "select function_name, parameters, macro_definition from duckdb_functions() "
        "where function_type = 'macro' and macro_definition is not null"
    ).fetchall()
    out = {}
    for name, parameters, body in rows:
        if name in LOCAL_ONLY:
            continue
        try:
            out[name.lower()] = (list(parameters), sqlglot.parse_one(body, read="duckdb"))
        except sqlglot.errors.ParseError:
            continue  # a built-in macro written in syntax we never call
    return out


def function_names(tree: exp.Expression) -> set[str]:
    """Lower-case names of the functions a tree calls (anonymous ones included)."""
    names = set()
    for node in tree.find_all(exp.Func):
        names.add(
            node.name.lower() if isinstance(node, exp.Anonymous) else node.sql_name().lower()
        )
    return names


def is_local(tree: exp.Expression) -> bool:
    """Whether a tree calls a function that must stay in DuckDB."""
    return bool(function_names(tree) & LOCAL_ONLY)


def _expand_macros(tree: exp.Expression, defs: dict) -> exp.Expression:
    for _ in range(10):  # macros may call macros; ten levels is more than ours nest
        changed = False

        def expand(node: exp.Expression) -> exp.Expression:
            nonlocal changed
            if isinstance(node, exp.Anonymous) and node.name.lower() in defs:
                params, body = defs[node.name.lower()]
                args = node.expressions
                if len(args) != len(params):
                    raise TranslationError(
                        f"{node.name}: {len(params)} arguments, {len(args)} given"
                    )
                bound = dict(zip(params, args, strict=True))

                def substitute(n: exp.Expression) -> exp.Expression:
                    if isinstance(n, exp.Column) and not n.table and n.name in bound:
                        return exp.paren(bound[n.name].copy(), copy=False)
                    return n

                changed = True
                return exp.paren(body.copy().transform(substitute), copy=False)
            return node

        tree = tree.transform(expand)
        if not changed:
            return tree
    raise TranslationError("macros nest more than ten levels deep")


def _dt_interval(seconds: exp.Expression) -> exp.Expression:
    zero = exp.Literal.number(0)
    return exp.Anonymous(
        this="make_dt_interval", expressions=[zero, zero.copy(), zero.copy(), seconds]
    )


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.INTERVAL:
        if isinstance(node.this, exp.Placeholder) and node.this.name:
            name = node.this.name + SECONDS_SUFFIX
            return _dt_interval(exp.Placeholder(this=name))
        if isinstance(node.this, exp.Literal) and node.this.is_string:
            seconds = interval_seconds(node.this.this)
            return _dt_interval(exp.Literal.number(repr(seconds)))
        raise TranslationError(f"cast to interval of {node.this.sql('duckdb')}: give a bound text")
    if isinstance(node, exp.DateBin):
        origin = node.args.get("unit") or node.args.get("zone")
        if origin is None:
            origin = exp.cast(exp.Literal.string(DUCKDB_ORIGIN), exp.DataType.Type.TIMESTAMP)
        return exp.Anonymous(this="time_bucket", expressions=[node.this, node.expression, origin])
    if isinstance(node, exp.PercentileCont):
        return _quantile_cont(node.this, node.expression)
    if isinstance(node, exp.Quantile):
        return _quantile_cont(node.this, node.args["quantile"])
    if isinstance(node, exp.GenerateSeries):
        end = node.args["end"]
        if node.args.get("is_end_exclusive"):
            end = exp.Sub(this=end, expression=_dt_interval(exp.Literal.number("0.000001")))
        return exp.Anonymous(
            this="sequence", expressions=[node.args["start"], end, node.args["step"]]
        )
    if isinstance(node, exp.Div):
        return exp.Anonymous(
            this="try_divide",
            expressions=[
                exp.cast(node.this, exp.DataType.Type.DOUBLE),
                exp.cast(node.expression, exp.DataType.Type.DOUBLE),
            ],
        )
    if isinstance(node, exp.IgnoreNulls) and isinstance(node.this, exp.AnyValue):
        return exp.Anonymous(this="any_value", expressions=[node.this.this, exp.true()])
    if isinstance(node, exp.AnyValue) and not isinstance(node.parent, exp.IgnoreNulls):
        return exp.Anonymous(this="any_value", expressions=[node.this, exp.true()])
    return node


#: DuckDB's continuous quantile of the sorted values ``a`` at level ``q``: rank RN = (n - 1) q
#: between floor(RN) and ceil(RN), blended as its ``CastInterpolation::Interpolate`` for
#: doubles, ``lo * (1 - d) + hi * d``, which its build computes as one fused multiply-add
#: (``fma(lo, 1 - d, hi * d)``): Java's ``Math.fma`` gives the same bits, where Spark's own
#: ``percentile`` (``(1 - d) lo + d hi``, unfused) differs in the last bit now and then
_RANK = "((cast(size(a) as double) - cast(1 as double)) * cast({q} as double))"
_LEVEL = (
    "case when size(a) = 0 then null "
    "when floor({rn}) = ceil({rn}) then a[cast(floor({rn}) as int)] "
    "else cast(reflect('java.lang.Math', 'fma', a[cast(floor({rn}) as int)], "
    "cast(1 as double) - ({rn} - floor({rn})), "
    "a[cast(ceil({rn}) as int)] * ({rn} - floor({rn}))) as double) end"
)


def _quantile_cont(value: exp.Expression, level: exp.Expression) -> exp.Expression:
    """Exact ``quantile_cont`` on Spark: the group's values sorted, then DuckDB's blend of
    the two nearest ranks (a list of levels gives a list, as in DuckDB)."""
    levels = level.expressions if isinstance(level, exp.Array) else [level]
    blends = [_LEVEL.format(rn=_RANK.format(q=q.sql(dialect="spark"))) for q in levels]
    body = (
        f"case when size(a) = 0 then null else array({', '.join(blends)}) end"
        if isinstance(level, exp.Array)
        else blends[0]
    )
    values = f"array_sort(collect_list(cast({value.sql(dialect='spark')} as double)))"
    return sqlglot.parse_one(f"transform(array({values}), a -> {body})[0]", read="spark")


def to_spark(tree: exp.Expression, defs: dict) -> str:
    """Spark SQL text of a parsed DuckDB statement (macros expanded, constructs rewritten)."""
    if is_local(tree):
        names = ", ".join(sorted(function_names(tree) & LOCAL_ONLY))
        raise TranslationError(f"{names} stays in DuckDB and cannot run on Spark")
    tree = _bottom_up(_expand_macros(tree.copy(), defs), _rewrite)
    return tree.sql(dialect="spark")


def _bottom_up(tree: exp.Expression, fn) -> exp.Expression:
    """Apply ``fn`` to every node, children before their parents (a rewritten node's
    arguments are rewritten already)."""
    for node in reversed(list(tree.dfs())):
        new = fn(node)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree


def placeholders(tree: exp.Expression) -> set[str]:
    """Names of the ``$name`` values a tree binds."""
    return {p.name for p in tree.find_all(exp.Placeholder) if p.name}


def _spark_value(value: object) -> object:
    """A bound value as Spark takes it: instants with their zone (UTC), lists as arrays."""
    from pyspark.sql import functions as F

    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, list | tuple):
        if not value:
            return F.array().cast("array<string>")
        return F.array(*[F.lit(_spark_value(v)) for v in value])
    return value


def spark_args(tree: exp.Expression, values: object) -> dict | list:
    """The values of a DuckDB query's parameters, for the Spark text of :func:`to_spark`."""
    if isinstance(values, list | tuple):
        return [_spark_value(v) for v in values]
    values = dict(values or {})
    out: dict[str, object] = {}
    intervals = {
        n.this.name
        for n in tree.find_all(exp.Cast)
        if isinstance(n.this, exp.Placeholder) and n.to.this == exp.DataType.Type.INTERVAL
    }
    for name in placeholders(tree):
        if name not in values:
            raise TranslationError(f"${name} has no value")
        if name in intervals:
            out[name + SECONDS_SUFFIX] = interval_seconds(values[name])
        # an interval placeholder may also be used as it is elsewhere (not in our SQL)
        if name not in intervals or any(
            p.name == name and not isinstance(p.parent, exp.Cast)
            for p in tree.find_all(exp.Placeholder)
        ):
            out[name] = _spark_value(values[name])
    return out


@dataclass
class Split:
    """A query cut in two: ``remote`` CTEs run on Spark, ``local`` runs in DuckDB over them."""

    #: name of each CTE to compute on Spark -> its Spark-runnable query (DuckDB dialect tree)
    remote: dict[str, exp.Expression]
    #: what DuckDB runs, reading each remote CTE under its name
    local: exp.Expression | None


def split(tree: exp.Expression, views: set[str]) -> Split:
    """Cut a query whose last steps must stay in DuckDB (a pseudonym, ``iso_text``).

    Every CTE that calls no local-only function and reads no local CTE runs on Spark; of
    those, the ones that the local part reads come back (their results are aggregates:
    one row per bypass user, say), and DuckDB runs the rest. A query that calls nothing
    local runs whole on Spark (``local`` is None).
    """
    if not is_local(tree):
        return Split({"": tree}, None)
    with_ = tree.args.get("with_") or tree.args.get("with")
    if with_ is None:
        raise TranslationError("a query on the rows that calls a DuckDB-only function needs CTEs")
    remote: list[exp.CTE] = []
    local: list[exp.CTE] = []
    for cte in with_.expressions:
        reads = {t.name for t in cte.this.find_all(exp.Table)}
        if is_local(cte.this) or reads & {c.alias for c in local}:
            local.append(cte)
        else:
            remote.append(cte)
    body = tree.copy()
    body.set("with_", None)
    body.set("with", None)
    needed = {t.name for c in local for t in c.this.find_all(exp.Table)}
    needed |= {t.name for t in body.find_all(exp.Table)}
    if needed & views:
        raise TranslationError("a DuckDB-only function is applied to the rows themselves")
    remote_names = [c.alias for c in remote]
    out: dict[str, exp.Expression] = {}
    for name in remote_names:
        if name in needed:
            query = exp.select("*").from_(name)
            for cte in remote:
                query = query.with_(cte.alias, as_=cte.this.copy())
            out[name] = query
    rest = body
    for cte in local:
        rest = rest.with_(cte.alias, as_=cte.this.copy())
    return Split(out, rest)
