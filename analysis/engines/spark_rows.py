"""The rows on Spark: the Parquet inputs typed and checked as a load types them, and the
statements' fingerprints through a map of their keys (see :mod:`analysis.engines.spark`)."""

from __future__ import annotations

import functools
import logging
import operator
from pathlib import Path
from urllib.parse import unquote, urlparse

import duckdb

from analysis import fingerprint
from analysis.engines.in_place import hive_keys
from analysis.errors import LoadError
from analysis.ingest import extras_from
from analysis.kinds import AUTH, QUERIES, Kind

log = logging.getLogger(__name__)

#: above this many statement keys the fingerprint map broadcast to every executor is no longer
#: kilobytes: a warning says so
MAP_KEYS = 1000


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

    unsafe = functools.reduce(operator.or_, [col.contains(u) for u in fingerprint.KEY_UNSAFE])
    strings = F.regexp_replace(col, F.lit(fingerprint.KEY_STRING), F.lit("''"))
    # RE2's \11 (group 1, then the digit 1); Java reads $11 as group 1 and a 1 when the
    # pattern has fewer than 11 groups (it has one)
    numbers = F.regexp_replace(strings, F.lit(fingerprint.KEY_NUMBER), F.lit("$11"))
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


class Rows:
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
        extras = extras_from([n for n in types if n not in partitions], kind, {})
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
