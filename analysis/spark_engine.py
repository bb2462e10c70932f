"""``--engine spark``: the figures that read rows run on Apache Spark, the report as today.

What runs where:

- **Spark** reads the auth and query Parquet inputs (a path, a glob, a Hive-partitioned
  folder, or any URI Spark reads, such as ``s3a://`` on a cluster), types and checks the rows
  as :mod:`analysis.inplace` does, keeps those of the time range (Parquet statistics prune
  the row groups and files outside it), and holds them as the temp views ``v_auth`` and
  ``v_queries``. Every figure query that reads those views (``analysis/sql/*.sql`` and the
  inline ones) is translated (:mod:`analysis.spark_sql`) and runs there.
- **Across the network** come back only the results of those queries: the per-bucket series,
  the two periods' figures, the fingerprint profiles, the dimension shares, the bypass
  figures, the per-file row counts, the distinct statement keys (and their fingerprints go
  back, as a small broadcast map). Rows never do.
- **DuckDB** holds the results as tables and does everything else as with the other engines:
  the timeline, detection, charts, the draft, the manifest, the pseudonyms (the key never
  leaves this machine).

The seam is :class:`SparkConnection`: it stands for the DuckDB connection the report's
code already takes. A statement that reads a Spark view runs on Spark and its result comes
back as a DuckDB result; any other statement runs on DuckDB as before. So the figures' code
is the same for every engine, and a figure added later runs on Spark without more work (or
fails saying which construct has no translation).

Fingerprints: the distinct statement keys (:data:`analysis.fingerprint.KEY_MACRO`, the same
patterns in Spark's Java regular expressions) are computed on Spark; DuckDB's macro
fingerprints the keys; the key → fingerprint map is broadcast and joined back. A Parquet
file with a ``fingerprint`` column of its own is read as it is.
"""

from __future__ import annotations

import functools
import itertools
import logging
import operator
import time
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import duckdb
import sqlglot
from sqlglot import exp

from analysis import fingerprint, spark_sql
from analysis.inplace import MAP_KEYS, check_parquet, hive_keys
from analysis.kinds import AUTH, QUERIES, FileResult, Kind, LoadError
from analysis.readers import _extras_from

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "--engine spark needs PySpark and Java 17: pip install -e '.[spark]' "
    "(and apt-get install openjdk-17-jre-headless)"
)
#: settings of every session; a --spark-conf of the same key wins
SESSION_CONF = {
    "spark.app.name": "postmortem",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    # time buckets, periods and instants in UTC, whatever the machine's zone
    "spark.sql.session.timeZone": "UTC",
    # a naive Parquet timestamp (DuckDB's TIMESTAMP) is a UTC instant here
    "spark.sql.parquet.inferTimestampNTZ.enabled": "false",
    # in local mode the driver is the executor: room for the cached rows of a day or two
    "spark.driver.memory": "2g",
}
#: the views of the rows that Spark holds
ROW_VIEWS = ("v_auth", "v_queries")
_SPARK_TO_DUCKDB = {
    "string": "varchar",
    "double": "double",
    "float": "float",
    "bigint": "bigint",
    "int": "integer",
    "smallint": "smallint",
    "tinyint": "tinyint",
    "boolean": "boolean",
    "timestamp": "timestamp",
    "timestamp_ntz": "timestamp",
    "date": "date",
}


def require():
    """The ``pyspark`` module, or a one-line error saying how to install it."""
    # PySpark 4 warns at import that pandas 3 is newer than it was tested with; no pandas
    # conversion of PySpark's is used here (results cross as Arrow tables)
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    try:
        import pyspark  # noqa: F401
        from pyspark.sql import SparkSession  # noqa: F401
    except ImportError:
        raise LoadError(INSTALL_HINT) from None
    import pyspark

    return pyspark


def is_uri(text: str) -> bool:
    """Whether an input is a URI for Spark (``s3a://…``) rather than a local path."""
    return "://" in text


def parse_conf(items: Sequence[str] | str | None) -> dict[str, str]:
    """``KEY=VALUE`` settings as a mapping.

    Raises
    ------
    ValueError
        for an item without ``=``.
    """
    if not items:
        return {}
    out = {}
    for item in [items] if isinstance(items, str) else items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"spark_conf {item!r} is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def session(master: str = "local[2]", conf: dict[str, str] | None = None):
    """A SparkSession with the report's settings (UTC, no UI, few shuffle partitions)."""
    require()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master)
    for key, value in {**SESSION_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # no Java, a master that does not answer: one line
        raise LoadError(f"Spark did not start ({' '.join(str(exc).split())[:300]})") from exc
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# --- the rows, typed as a load types them ---


def _text(types: dict[str, str], name: str):
    from pyspark.sql import functions as F

    kind_of = types.get(name)
    if kind_of is None:
        return F.lit(None).cast("string")
    col = F.col(f"`{name}`")
    if kind_of != "string":
        col = col.cast("string")
    return F.nullif(F.trim(col), F.lit(""))


def _ts(types: dict[str, str]):
    """The typed ``ts``: a Parquet timestamp as it is, ISO text or epoch numbers read."""
    from pyspark.sql import functions as F

    kind_of = types["ts"]
    if kind_of == "timestamp":
        return F.col("ts")
    if kind_of in ("timestamp_ntz", "date"):
        return F.col("ts").cast("timestamp")
    text = _text(types, "ts")
    number = text.try_cast("double")
    epoch = F.when(text.rlike(r"^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$"), number).otherwise(None)
    from_epoch = F.when(F.abs(epoch) >= 1e11, epoch / 1000).otherwise(epoch)
    return F.coalesce(text.try_cast("timestamp"), F.timestamp_seconds(from_epoch))


def fingerprint_key(col):
    """Spark's ``fingerprint_key``: the patterns of :mod:`analysis.fingerprint`, in Java."""
    from pyspark.sql import functions as F

    unsafe = functools.reduce(operator.or_, [col.contains(u) for u in fingerprint._KEY_UNSAFE])
    strings = F.regexp_replace(col, F.lit(fingerprint._KEY_STRING), F.lit("''"))
    # RE2's \11 (group 1, then the digit 1); Java reads $11 as group 1 and a 1 when the
    # pattern has fewer than 11 groups (it has one)
    numbers = F.regexp_replace(strings, F.lit(fingerprint._KEY_NUMBER), F.lit("$11"))
    return F.when(unsafe, col).otherwise(numbers)


def fingerprint_map(keys: list[str]) -> list[tuple[str, str]]:
    """Each statement key with its fingerprint, by DuckDB's macro (one query for all)."""
    con = duckdb.connect(":memory:")
    try:
        fingerprint.install(con)
        return con.execute(
            "select k, fingerprint(k) from (select unnest($keys::varchar[]) as k)",
            {"keys": keys},
        ).fetchall()
    finally:
        con.close()


def _local_file(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme in ("", "file") else uri


class _Rows:
    """The typed, checked rows of one kind as Spark views, and what each file held."""

    def __init__(self, spark, kind: Kind, paths: list[str], local: list[Path], rng):
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        self.kind = kind
        try:
            # the union of the files' columns, as DuckDB's union_by_name reads them
            raw = spark.read.option("mergeSchema", "true").parquet(*paths)
        except Exception as exc:
            raise LoadError(
                f"the {kind.name} Parquet files cannot be read by Spark "
                f"({' '.join(str(exc).split())[:300]})"
            ) from exc
        types = {f.name: f.dataType.simpleString() for f in raw.schema.fields}
        missing = [n for n in kind.required if n not in types]
        if missing:
            raise LoadError(
                f"{paths[0]}: the Parquet files have no {', '.join(missing)} column "
                f"(columns: {', '.join(types)})"
            )
        partitions = hive_keys(local) | _partition_columns(raw)
        extras = _extras_from([n for n in types if n not in partitions], kind, {})
        lo = F.lit(rng[0].isoformat(sep=" ")).cast("timestamp")
        hi = F.lit(rng[1].isoformat(sep=" ")).cast("timestamp")
        if types["ts"] == "timestamp":
            # on the column itself, so that Spark prunes row groups by their statistics
            raw = raw.where((F.col("ts") >= lo) & (F.col("ts") < hi))
        elif types["ts"] == "timestamp_ntz":
            raw = raw.where(
                (F.col("ts") >= lo.cast("timestamp_ntz"))
                & (F.col("ts") < hi.cast("timestamp_ntz"))
            )
        cols = [F.col("_metadata.file_path").alias("_file")]
        for n in kind.fields:
            if n == "ts":
                cols.append(_ts(types).alias("ts"))
            elif n in kind.numeric:
                target = "bigint" if n == "rows" else "double"
                if types.get(n) in ("double", "float", "bigint", "int", "smallint", "tinyint") or (
                    types.get(n, "").startswith("decimal")
                ):
                    cols.append(F.col(f"`{n}`").cast(target).alias(n))
                else:
                    cols.append(_text(types, n).try_cast("double").try_cast(target).alias(n))
            elif n == "outcome":
                cols.append(F.lower(_text(types, n)).alias(n))
            elif n == "statement" and types.get(n) == "string":
                cols.append(F.col("statement"))
            elif n == "fingerprint":
                cols.append(_text(types, n).alias("_fp_given"))
            else:
                cols.append(_text(types, n).alias(n))
        cols += [F.col(f"`{n}`").cast("string").alias(n) for n in extras]
        typed = raw.select(*cols).where((F.col("ts") >= lo) & (F.col("ts") < hi))
        usable = F.col("ts").isNotNull()
        for n in kind.required:
            if n != "ts":
                usable = usable & F.col(n).isNotNull()
        for n in kind.numeric:
            usable = usable & F.coalesce(F.col(n) >= 0, F.lit(True))
        if kind is AUTH:
            usable = usable & F.col("outcome").isin("success", "failure")
        if kind is QUERIES:
            usable = usable & (F.col("statement").isNotNull() | F.col("_fp_given").isNotNull())
            typed = self._fingerprints(spark, typed, "statement" in types)
        else:
            typed = typed.persist(StorageLevel.MEMORY_AND_DISK)
        self.typed = typed.withColumn("_usable", usable)
        order = [
            F.lit(0).alias("source_id"),
            F.lit(None).cast("bigint").alias("line"),
            *[F.col(n) for n in kind.fields],
            *[F.col(f"`{n}`") for n in extras],
        ]
        self.view = self.typed.where("_usable").select(*order)

    @staticmethod
    def _fingerprints(spark, typed, has_statement: bool):
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        if not has_statement:
            return typed.withColumn("fingerprint", F.col("_fp_given")).persist(
                StorageLevel.MEMORY_AND_DISK
            )
        # kept (in memory, else on the executors' disks): the regular expressions run once
        # per row, not once per figure
        keyed = typed.withColumn("_fp_key", fingerprint_key(F.col("statement"))).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        keys = [
            r[0]
            for r in keyed.where(F.col("_fp_given").isNull() & F.col("statement").isNotNull())
            .select("_fp_key")
            .distinct()
            .collect()
        ]
        if len(keys) > MAP_KEYS:
            log.warning("%d statement keys: the fingerprint map is broadcast whole", len(keys))
        pairs = fingerprint_map(sorted(keys)) if keys else []
        fp_map = spark.createDataFrame(pairs, "_fp_key string, _fp string")
        joined = keyed.join(F.broadcast(fp_map), on="_fp_key", how="left")
        return joined.withColumn("fingerprint", F.coalesce(F.col("_fp_given"), F.col("_fp")))

    def files(self) -> list[tuple[str, int, int]]:
        """(file, rows in the range, usable rows) for every file with a row in the range."""
        from pyspark.sql import functions as F

        rows = (
            self.typed.groupBy("_file")
            .agg(F.count(F.lit(1)).alias("n"), F.count_if(F.col("_usable")).alias("ok"))
            .orderBy("_file")
            .collect()
        )
        return sorted((_local_file(r["_file"]), r["n"], r["ok"]) for r in rows)


def _partition_columns(df) -> set[str]:
    """The Hive partition columns Spark found in the folder names of a read."""
    try:
        files = df.inputFiles()[:100]
    except Exception:  # the listing is a nicety: without it, no partition is left out
        return set()
    return hive_keys([Path(urlparse(f).path) for f in files])


# --- the connection that routes each statement to its engine ---


class SparkConnection:
    """A DuckDB connection whose statements on the row views run on Spark.

    Everything else (the timeline, macros, variables, the tables of results) is the DuckDB
    connection's: attributes not defined here are its own.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, spark, views: Sequence[str] = ()):
        self._con = con
        self.spark = spark
        self.views = set(views)
        self._counter = itertools.count()
        self._registered: list[str] = []
        self._macros: dict | None = None

    def __getattr__(self, name: str):
        return getattr(self._con, name)

    @property
    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection underneath."""
        return self._con

    def add_view(self, name: str, df) -> None:
        """Hold a Spark DataFrame as a view, and give DuckDB its (empty) shape.

        The shape lets ``information_schema`` answer for the view (which columns are text,
        in which order) without a row crossing.
        """
        df.createOrReplaceTempView(name)
        self.views.add(name)
        cols = ", ".join(
            f'"{f.name}" {_SPARK_TO_DUCKDB.get(f.dataType.simpleString(), "varchar")}'
            for f in df.schema.fields
        )
        self._con.execute(f"create or replace temp table {name} ({cols})")

    def _tree(self, query: str) -> exp.Expression | None:
        """The parsed statement when it reads a Spark view, else None (DuckDB runs it)."""
        if not any(v in query for v in self.views):
            return None
        try:
            trees = sqlglot.parse(query, read="duckdb")
        except sqlglot.errors.SqlglotError:
            return None
        if len(trees) != 1 or trees[0] is None:
            return None
        tree = trees[0]
        ctes = {c.alias for c in tree.find_all(exp.CTE)}
        tables = {t.name for t in tree.find_all(exp.Table)} - ctes
        return tree if tables & self.views else None

    def execute(self, query: str, parameters: object = None):
        """Run a statement on the engine that holds what it reads; a DuckDB result back."""
        from pyspark import StorageLevel

        tree = self._tree(query)
        if tree is None:
            if parameters is None:
                return self._con.execute(query)
            return self._con.execute(query, parameters)
        if self._macros is None:
            self._macros = spark_sql.macros(self._con)
        if isinstance(tree, exp.Create):
            name = tree.this.name if isinstance(tree.this, exp.Table) else tree.this.this.name
            # a view of ours over the rows (v_auth_queries: each query with its attempt) is
            # read by several figures: computed once, kept beside the rows
            df = self._spark(tree, parameters).persist(StorageLevel.MEMORY_AND_DISK)
            self.add_view(name, df)
            return self._con.execute("select true as created where false")
        parts = spark_sql.split(tree, self.views)
        if parts.local is None:
            return self._con.execute(f"select * from {self._fetch(tree, parameters)}")  # noqa: S608 - our name
        local = parts.local
        for cte, remote in parts.remote.items():
            name = self._fetch(remote, parameters)
            local = local.transform(
                lambda n, cte=cte, name=name: (
                    exp.to_table(name) if isinstance(n, exp.Table) and n.name == cte else n
                )
            )
        wanted = spark_sql.placeholders(local)
        values = {k: v for k, v in dict(parameters or {}).items() if k in wanted}
        return self._con.execute(local.sql(dialect="duckdb"), values)

    def _spark(self, tree: exp.Expression, parameters: object):
        """A Spark DataFrame of a DuckDB statement (translated, values bound, not run)."""
        if isinstance(tree, exp.Create):
            body = tree.expression
        else:
            body = tree
        self._upload(body)
        text = spark_sql.to_spark(body, self._macros)
        args = spark_sql.spark_args(body, parameters)
        df = self.spark.sql(text, args=args) if args else self.spark.sql(text)
        return df

    def _upload(self, tree: exp.Expression) -> None:
        """Send the small DuckDB tables a Spark query reads (``_scope``, ``_auth_callers``)."""
        ctes = {c.alias for c in tree.find_all(exp.CTE)}
        for t in tree.find_all(exp.Table):
            name = t.name
            if name in ctes or name in self.views or t.db:
                continue
            try:
                table = self._con.sql(f'select * from "{name}"').to_arrow_table()  # noqa: S608 - a table name the query itself gave
            except duckdb.Error:
                continue  # not DuckDB's either: Spark will say what is missing
            self.spark.createDataFrame(table).createOrReplaceTempView(name)

    def _fetch(self, tree: exp.Expression, parameters: object) -> str:
        """Run a query on Spark and register its result in DuckDB; the table's name."""
        from pyspark.sql import functions as F

        df = self._spark(tree, parameters)
        # instants come back as naive UTC timestamps, as DuckDB's views hold them
        df = df.select(
            *[
                F.col(f"`{f.name}`").cast("timestamp_ntz").alias(f.name)
                if f.dataType.simpleString() == "timestamp"
                else F.col(f"`{f.name}`")
                for f in df.schema.fields
            ]
        )
        started = time.monotonic()
        table = df.toArrow()
        log.info(
            "spark: %d rows in %.1f s: %s",
            table.num_rows,
            time.monotonic() - started,
            " ".join(tree.sql(dialect="duckdb").split())[:120],
        )
        name = f"_spark_result_{next(self._counter)}"
        self._con.register(name, table)
        self._registered.append(name)
        while len(self._registered) > 50:
            self._con.unregister(self._registered.pop(0))
        return name

    def close(self) -> None:
        """Close DuckDB and stop Spark."""
        self._con.close()
        try:
            self.spark.stop()
        except Exception:  # a session already stopped
            pass


def inputs(texts: list[str], local: list[Path]) -> list[str]:
    """What Spark reads for one input: folders and URIs as given (a folder keeps its Hive
    partitions), globs and files as the files they name."""
    out: list[str] = []
    for text in texts:
        if is_uri(text):
            out.append(text)
        elif Path(text).is_dir():
            out.append(str(Path(text).resolve()))
        else:
            out.extend(str(p.resolve()) for p in _expanded(text))
    return out or [str(p) for p in local]


def _expanded(text: str) -> list[Path]:
    from analysis.load import expand_inputs

    return expand_inputs([text])


def attach(
    con: duckdb.DuckDBPyConnection,
    texts: dict[str, list[str]],
    time_range: tuple[datetime, datetime],
    *,
    master: str = "local[2]",
    conf: dict[str, str] | None = None,
) -> tuple[SparkConnection, list[FileResult]]:
    """Start Spark, hold the Parquet inputs as ``v_auth`` and ``v_queries`` there.

    Returns the routing connection and, per file with a row in the range, the rows read,
    usable (loaded) and not (rejected, not kept), as :func:`analysis.inplace.attach` does.
    """
    require()
    local = {k: [p for t in v if not is_uri(t) for p in _expanded(t)] for k, v in texts.items()}
    for kind in (AUTH, QUERIES):
        if not texts.get(kind.name):
            raise LoadError(f"--engine spark needs the {kind.name} input as Parquet; none given")
        if local[kind.name]:
            check_parquet(kind, local[kind.name])
    spark = session(master, conf)
    sc = SparkConnection(con, spark)
    results: list[FileResult] = []
    try:
        for kind, view in ((AUTH, "v_auth"), (QUERIES, "v_queries")):
            rows = _Rows(
                spark,
                kind,
                inputs(texts[kind.name], local[kind.name]),
                local[kind.name],
                time_range,
            )
            sc.add_view(view, rows.view)
            for path, read, usable in rows.files():
                fr = FileResult(kind.name, path, "parquet (spark)", "", -(len(results) + 1), read)
                fr.rows_loaded = usable
                fr.rows_rejected = read - usable
                results.append(fr)
    except BaseException:
        spark.stop()
        raise
    return sc, results
