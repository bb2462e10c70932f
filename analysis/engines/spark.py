"""``--engine spark``: the figures that read rows run on Apache Spark, the report as today.

What runs where:

- **Spark** reads the auth and query Parquet inputs (a path, a glob, a Hive-partitioned
  folder, or any URI Spark reads, such as ``s3a://`` on a cluster), types and checks the rows
  as :mod:`analysis.engines.in_place` does, keeps those of the time range (Parquet statistics prune
  the row groups and files outside it), and holds them as the temp views ``v_auth`` and
  ``v_queries``. Every figure query that reads those views (``analysis/sql/*.sql`` and the
  inline ones) is translated (:mod:`analysis.engines.spark_sql`) and runs there.
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

Why this seam, and not tables of aggregates that a changed ``summary`` reads: the figures'
SQL stays the one text of each figure (a second, aggregate-shaped copy would drift from it),
``summary``, ``compare``, ``metrics`` and the charts stay as they are for both engines, and the
golden test can run each figure function on both engines and compare the frames. The price is
the translation (:mod:`analysis.engines.spark_sql`), which must know every construct the
figures use;
a query whose last step must stay local (a pseudonym) is split at its CTEs.

Fingerprints: the distinct statement keys (:data:`analysis.fingerprint.KEY_MACRO`, the same
patterns in Spark's Java regular expressions) are computed on Spark; DuckDB's macro
fingerprints the keys; the key → fingerprint map is broadcast and joined back. A Parquet
file with a ``fingerprint`` column of its own is read as it is.
"""

from __future__ import annotations

import itertools
import logging
import time
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import sqlglot
from sqlglot import exp

from analysis.engines import in_place as inplace
from analysis.engines import spark_rows, spark_sql
from analysis.errors import LoadError
from analysis.kinds import AUTH, QUERIES, FileResult, Kind

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
    # time buckets, periods and instants in UTC, whatever the machine's zone
    "spark.sql.session.timeZone": "UTC",
    # a naive Parquet timestamp (DuckDB's TIMESTAMP) is a UTC instant here
    "spark.sql.parquet.inferTimestampNTZ.enabled": "false",
}
#: and in local mode: a few shuffle partitions for two cores, and room for the cached rows
#: (the driver is the executor); a cluster keeps its own defaults
LOCAL_CONF = {"spark.sql.shuffle.partitions": "4", "spark.driver.memory": "2g"}
#: the column of a Spark result that holds each row's place in it
_ROW = "_pm_spark_row"
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


def check_parquet(kind: Kind, paths: list[Path]) -> None:
    """Refuse, naming the file, a local input that is not Parquet."""
    inplace.check_parquet(
        kind, paths, flag="--engine spark", instead="with the duckdb engine", required=False
    )


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
    local = LOCAL_CONF if master.startswith("local") else {}
    for key, value in {**SESSION_CONF, **local, **(conf or {})}.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # no Java, a master that does not answer: one line
        raise LoadError(f"Spark did not start ({' '.join(str(exc).split())[:300]})") from exc
    spark.sparkContext.setLogLevel("ERROR")
    return spark


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
            # in Spark's order (the query's order by): DuckDB scans a result of several
            # batches in parallel and, without insertion order, returns them in any order
            name = self._fetch(tree, parameters, numbered=True)
            return self._con.execute(
                f"select * exclude ({_ROW}) from {name} order by {_ROW}"  # noqa: S608 - our names
            )
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

    def _fetch(self, tree: exp.Expression, parameters: object, *, numbered: bool = False) -> str:
        """Run a query on Spark and register its result in DuckDB; the table's name.

        ``numbered``: with a column :data:`_ROW`, each row's place in Spark's result.
        """
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
        if numbered:
            table = table.append_column(_ROW, pa.array(np.arange(table.num_rows)))
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
    from analysis.ingest import expand_inputs

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
    usable (loaded) and not (rejected, not kept), as :func:`analysis.engines.in_place.attach` does.
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
            rows = spark_rows.Rows(
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
