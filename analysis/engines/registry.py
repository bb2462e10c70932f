"""The engines: where a report's rows are read, chosen once from its parameters.

``duckdb`` loads the inputs into the database and reads them there; ``in-place`` reads
Parquet files where they are (nothing loaded); ``spark`` reads them on Apache Spark and
brings back aggregates. Everything a report does differently per engine is a field of its
:class:`Engine`: what it checks before a kernel starts, how it attaches the auth and query
inputs, whether rows are local, and the versions it adds to the manifest. The report and the
figures ask the engine; they never test its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from analysis.errors import ParameterError
from analysis.ingest import cached_sha256
from analysis.kinds import AUTH, QUERIES, FileResult

#: the auth and query inputs of one report, by kind: as given (texts) and as local files
Inputs = dict[str, list[str]]
Files = dict[str, list[Path]]
Attach = Callable[..., tuple[Any, list[FileResult]]]


def _no_check(files: Files) -> None:
    """Nothing to check before the kernel: the load reports what it cannot read."""


def _nothing() -> None:
    """Nothing to make sure of before anything is read."""


def _check_in_place(files: Files) -> None:
    from analysis.engines import in_place

    for kind in (AUTH, QUERIES):
        in_place.check_parquet(kind, files[kind.name])


def _require_spark() -> None:
    from analysis.engines import spark

    spark.require()  # without PySpark, one line saying how to install it


def _check_spark(files: Files) -> None:
    from analysis.engines import spark

    for kind in (AUTH, QUERIES):
        if files[kind.name]:  # local files (URIs are Spark's to read)
            spark.check_parquet(kind, files[kind.name])


def _attach_in_place(
    con: duckdb.DuckDBPyConnection,
    texts: Inputs,
    files: Files,
    time_range: tuple[datetime, datetime],
    parameters: dict[str, Any],
    say: Callable[[str], None],
) -> tuple[duckdb.DuckDBPyConnection, list[FileResult]]:
    from analysis.engines import in_place

    say(f"in place: {sum(map(len, files.values()))} Parquet files, nothing copied")
    read = in_place.attach(con, files, time_range)
    for fr in read:
        fr.sha256 = cached_sha256(con, Path(fr.path))
    return con, read


def _attach_spark(
    con: duckdb.DuckDBPyConnection,
    texts: Inputs,
    files: Files,
    time_range: tuple[datetime, datetime],
    parameters: dict[str, Any],
    say: Callable[[str], None],
) -> tuple[Any, list[FileResult]]:
    from analysis.engines import spark

    say(f"spark: {parameters['spark_master']}, the rows stay in Spark, aggregates come back")
    routed, read = spark.attach(
        con,
        texts,
        time_range,
        master=parameters["spark_master"],
        conf=spark.parse_conf(parameters["spark_conf"]),
    )
    for fr in read:
        if not spark.is_uri(fr.path):
            fr.sha256 = cached_sha256(routed.duckdb, Path(fr.path))
    return routed, read


@dataclass(frozen=True)
class Engine:
    """One engine: what a report does with its auth and query inputs."""

    name: str
    help: str
    #: the auth and query inputs are loaded into the database (else attached where they are)
    loads_rows: bool
    #: an input may be a URI that only this engine reads: it is no file here
    reads_uris: bool = False
    #: the engine a notebook that reads rows itself (the exploration) uses instead
    rows_engine: str | None = None
    #: the packages whose versions the manifest adds
    packages: tuple[str, ...] = ()
    #: run before any input is expanded (e.g. that the engine is installed)
    prepare: Callable[[], None] = field(default=_nothing)
    #: run on the local input files before a kernel starts; raises one clear error
    check: Callable[[Files], None] = field(default=_no_check)
    #: attaches the auth and query inputs (engines that do not load them)
    attach: Attach | None = None

    def is_file(self, text: str) -> bool:
        """Whether an input as given names files here (not a URI only the engine reads)."""
        return not (self.reads_uris and "://" in text)

    def for_rows(self) -> Engine:
        """The engine of a notebook that reads rows: this one, or a local stand-in."""
        return ENGINES[self.rows_engine] if self.rows_engine else self


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine("duckdb", "load the inputs into the database, then analyse", loads_rows=True),
        Engine(
            "in-place",
            "Parquet inputs only: analyse the files where they are, no load",
            loads_rows=False,
            check=_check_in_place,
            attach=_attach_in_place,
        ),
        Engine(
            "spark",
            "the figures that read rows run on Apache Spark (Parquet inputs)",
            loads_rows=False,
            reads_uris=True,
            rows_engine="in-place",
            packages=("pyspark",),
            prepare=_require_spark,
            check=_check_spark,
            attach=_attach_spark,
        ),
    )
}


#: the parameter that names an engine by a flag of its own, ``--in-place`` for ``--engine
#: in-place`` (name, type, default, help, flags: a report parameter's fields)
ALIAS_PARAMETER = (
    "in_place",
    bool,
    False,
    "Parquet only: analyse the files where they are (--engine in-place)",
    ("--in-place",),
)


def names() -> tuple[str, ...]:
    """The engines' names, as ``--engine`` takes them."""
    return tuple(ENGINES)


def engine_of(parameters: dict[str, Any]) -> Engine:
    """The engine of a report: ``engine``, with ``in_place`` (``--in-place``) an alias of
    ``in-place`` for the default engine."""
    name = str(parameters.get("engine") or "duckdb")
    if name not in ENGINES:
        raise ParameterError(f"engine {name!r}: one of {', '.join(ENGINES)}")
    if name == "duckdb" and parameters.get("in_place"):
        name = "in-place"
    return ENGINES[name]
