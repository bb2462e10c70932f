"""``--engine spark``: every figure on Spark equals DuckDB's, and the report's summary.json is
byte-identical to ``--in-place`` on the same Parquet.

One Spark session (``local[2]``, no UI, 4 shuffle partitions, UTC) serves the module; the
fixtures are small. ``-m 'not slow'`` leaves these tests out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import sqlglot

from analysis import db, errors, fingerprint, sample
from analysis.alerts import rules as alerts
from analysis.engines import spark as spark_engine
from analysis.engines import spark_rows, spark_sql
from analysis.figures import compare, metrics, summary, views
from analysis.report.run import Run

ROOT = Path(__file__).resolve().parents[2]


def _require_spark() -> None:
    """PySpark and Java, or a skip (a failure in CI, where make test installs both)."""
    missing = []
    try:
        import pyspark  # noqa: F401
    except ImportError:
        missing.append("pyspark (pip install -e '.[spark]')")
    if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        missing.append("java (make java, or apt-get install openjdk-17-jre-headless)")
    if missing:
        if os.environ.get("CI") or os.environ.get("POSTMORTEM_REQUIRE_SHARED"):
            pytest.fail(f"missing, and CI requires them: {', '.join(missing)}")
        pytest.skip(f"not installed: {', '.join(missing)}")


# --- without Spark: the translation and the message ---


def test_without_pyspark_the_report_says_in_one_line_how_to_install_it(monkeypatch, capsys):
    from analysis import cli

    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark fails
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    code = cli.main(["report", "--engine", "spark", "--out", "reports/never-written"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"postmortem: error: {spark_engine.INSTALL_HINT}"]
    assert not (ROOT / "reports" / "never-written").exists()


def test_spark_settings_are_checked_and_a_secret_is_refused():
    from analysis.report import params

    p = params.resolve({"engine": "spark", "spark_conf": ["spark.executor.memory=8g"]})
    assert spark_engine.parse_conf(p["spark_conf"]) == {"spark.executor.memory": "8g"}
    for bad, message in (
        ({"engine": "flink"}, "engine"),
        ({"spark_conf": ["no-equals"]}, "KEY=VALUE"),
        ({"spark_conf": ["spark.hadoop.fs.s3a.secret.key=abc"]}, "a secret would be written"),
    ):
        with pytest.raises(errors.ParameterError, match=message):
            params.resolve(bad)


def test_the_translation_rewrites_what_sqlglot_would_get_wrong():
    con = duckdb.connect()
    views.install_macros(con)
    defs = spark_sql.macros(con)
    tree = sqlglot.parse_one(db.sql("series"), read="duckdb")
    text = spark_sql.to_spark(tree, defs).lower()
    assert "date_bin" not in text and "percentile_cont" not in text
    assert "time_bucket(make_dt_interval(0, 0, 0, :bucket__seconds), ts, " in text
    assert "cast('2000-01-03 00:00:00' as timestamp)" in text  # DuckDB's origin, explicit
    # exact quantiles with DuckDB's blend of the two nearest ranks, not percentile_approx
    assert "array_sort(collect_list(cast(duration_ms as double)))" in text
    assert "reflect('java.lang.math', 'fma'" in text and "percentile(" not in text
    assert "q[0] as latency_p50_ms" in text  # DuckDB's lists count from 1, Spark's from 0
    assert "is_system_failure" not in text  # the macro, expanded
    assert "array_contains((:codes), (error_code))" in text
    assert (
        "sequence(lo, hi + make_dt_interval(0, 0, 0, :bucket__seconds) - make_dt_interval(" in text
    )
    assert "try_divide(cast(coalesce(a.failures, 0) as double), cast(nullif(" in text
    bucketed = sqlglot.parse_one(
        "select time_bucket($bucket::interval, ts) from v_auth", read="duckdb"
    )
    args = spark_sql.spark_args(bucketed, {"bucket": "5 minutes", "start": None})
    assert args["bucket__seconds"] == 300.0 and "bucket" not in args
    fps = spark_sql.to_spark(sqlglot.parse_one(db.sql("fingerprints"), read="duckdb"), defs)
    assert "ANY_VALUE(n, TRUE) FILTER(WHERE period = 'incident')" in fps
    assert "* CAST(0.95 AS DOUBLE)" in fps


def test_a_pseudonym_is_computed_in_duckdb_from_spark_aggregates():
    tree = sqlglot.parse_one(db.sql("bypass_users"), read="duckdb")
    parts = spark_sql.split(tree, {"v_auth"})
    assert list(parts.remote) == ["per_user"]  # one row per bypass user comes back
    assert not spark_sql.is_local(parts.remote["per_user"])
    assert "pseudonym" in parts.local.sql("duckdb").lower()
    assert "v_auth" not in parts.local.sql("duckdb")
    with pytest.raises(errors.TranslationError, match="stays in DuckDB"):
        spark_sql.to_spark(tree, {})


# --- on Spark ---


@pytest.fixture(scope="module")
def spark():
    _require_spark()
    s = spark_engine.session("local[2]")
    yield s
    s.stop()


def _edge_files(root: Path) -> tuple[Path, Path]:
    """Rows that test the typing and the checks: case, blanks, rejects, a given fingerprint,
    a statement that is its own key, an extra column in one file only."""
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    auth, queries = root / "edge_auth.parquet", root / "edge_queries.parquet"
    con.execute(
        f"""copy (select * replace (latency_ms::double as latency_ms) from (values
            (timestamptz '2024-01-19 11:00:01+00', 'edge-1', 'FAILURE', 'edge-r1', '', 12.5,
             'db', 'eu-west', 'edge'),
            (timestamptz '2024-01-19 11:00:02+00', 'edge-1', 'maybe', 'edge-r2', null, 1.0,
             'db', 'eu-west', 'edge'),
            (timestamptz '2024-01-19 11:00:03+00', null, 'success', 'edge-r3', null, 1.0,
             'bypass', 'us-east', 'edge'),
            (timestamptz '2024-01-19 11:00:04+00', 'edge-2', 'success', 'edge-r4', null, -1.0,
             'db', 'us-east', 'edge'),
            (timestamptz '2024-01-19 11:00:05+00', 'edge-3', ' success', 'edge-r5', null, null,
             'bypass', 'us-east', 'edge')
        ) t(ts, user_id, outcome, request_id, error_code, latency_ms, auth_path, region, batch))
        to '{auth}' (format parquet)"""  # noqa: S608 - a test's own path
    )
    con.execute(
        f"""copy (select * replace (duration_ms::double as duration_ms) from (values
            (timestamptz '2024-01-19 11:00:01+00', 3.25, 'SELECT 1 /* a comment 7 */', null,
             'edge-r1', 'auth-service'),
            (timestamptz '2024-01-19 11:00:01+00', 4.5, null, 'given fingerprint ?',
             'edge-r1', 'auth-service'),
            (timestamptz '2024-01-19 11:00:02+00', -4.5, 'select 2', null, 'edge-r2',
             'auth-service'),
            (timestamptz '2024-01-19 11:00:04+00', 7.0,
             'select * from t where a in (1, 2, 3) and b = ''x''', null, 'edge-r4', 'web')
        ) t(ts, duration_ms, statement, fingerprint, request_id, caller))
        to '{queries}' (format parquet)"""  # noqa: S608
    )
    return auth, queries


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str | list[str]]:
    out = tmp_path_factory.mktemp("spark-pq")
    files = sample.generate(out, scale=0.02, seed=7, fmt="parquet")
    auth, queries = _edge_files(out)
    return {
        "auth_logs": [str(files["auth"]), str(auth)],
        "query_logs": [str(files["queries"]), str(queries)],
        "timeline": str(files["timeline"]),
    }


def _run(tmp: Path, name: str, **given) -> Run:
    run = Run.from_parameters(
        database=str(tmp / f"{name}.duckdb"),
        report_dir=str(tmp / name),
        say=lambda _m: None,
        **given,
    )
    run.load()
    return run


@pytest.fixture(scope="module")
def both(spark, inputs, tmp_path_factory) -> tuple[Run, Run]:
    tmp = tmp_path_factory.mktemp("runs")
    duck = _run(tmp, "duck", in_place=True, **inputs)
    on_spark = _run(tmp, "spark", engine="spark", **inputs)
    duck.scope(), on_spark.scope()
    return duck, on_spark


FIGURES = {
    "series": lambda con, p: metrics.series(con, p),
    "error_codes": lambda con, p: metrics.error_codes(con, p),
    "periods": lambda con, p: pd.DataFrame(metrics.periods(con, p)).T.sort_index(),
    "top_fingerprints": lambda con, p: metrics.top_fingerprints(
        con, p, incident_attempts=4000, baseline_attempts=300, limit=20
    ),
    "peak": lambda con, p: pd.DataFrame([metrics.peak(con, p)]),
    "dimensions": lambda con, p: compare.dimensions(con, p),
    "bypass": lambda con, p: con.execute(db.sql("bypass")).df(),
    "bypass_users": lambda con, p: summary.bypass_users(con, redact=True, key="k"),
    "first_failures": lambda con, p: metrics.first_failures(con, p),
    # the series the alert rules' unit test replays
    "alerts_fingerprints": lambda con, p: alerts.gather(con, p, alerts.metric_mapping({}))[0],
    "alerts_latency": lambda con, p: alerts.gather(con, p, alerts.metric_mapping({}))[1],
}


@pytest.mark.slow
def test_a_result_from_spark_keeps_the_order_of_its_query(spark):
    """DuckDB scans a result of several batches in parallel; without insertion order it
    returned the rows of a figure's ``order by`` in another order (seen on alerts_latency)."""
    con = spark_engine.SparkConnection(db.connect(":memory:"), spark)
    con.add_view("v_numbers", spark.range(0, 400_000, numPartitions=8))
    for _ in range(3):
        got = [r[0] for r in con.execute("select id from v_numbers order by id desc").fetchall()]
        assert got == list(range(399_999, -1, -1))


@pytest.mark.slow
@pytest.mark.parametrize("figure", sorted(FIGURES))
def test_every_figure_is_the_same_on_both_engines(both, figure):
    duck, on_spark = both
    params = duck.analysis_params
    expected = FIGURES[figure](duck.con, params)
    got = FIGURES[figure](on_spark.con, params)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


@pytest.mark.slow
def test_the_rows_read_and_rejected_per_file_are_the_same(both):
    duck, on_spark = both

    def counts(run):
        return sorted(
            (f.kind, Path(f.path).name, f.rows_read, f.rows_loaded, f.rows_rejected)
            for f in run.loaded.files
            if f.kind != "timeline"
        )

    assert counts(on_spark) == counts(duck)
    rejected = {c[1]: c[4] for c in counts(duck)}
    # 'maybe' and a negative latency; the row without a user is an attempt without a user
    assert rejected["edge_auth.parquet"] == 2 and rejected["edge_queries.parquet"] == 1
    given = "select fingerprint from v_queries where request_id = 'edge-r1' order by 1"
    assert on_spark.con.execute(given).fetchall() == [("given fingerprint ?",), ("select ?",)]


@pytest.mark.slow
def test_spark_keys_statements_as_the_duckdb_macro_does(spark):
    from pyspark.sql import functions as F

    statements = [
        "SELECT * FROM users WHERE id = 42 AND name = 'bob'",
        "select a from t where x in (1, 22, 333) and y = -7.5e3",
        "insert into t values (1, 'a'), (2, 'b')",
        "select t1.col_2 from t1 where c = 0x1F",
        "SELECT 1 -- 2",
        'select "Col1" from "T" where a = 1',
        "select $1, $2 from t where d = '2024-01-01'",
        "select 'it''s' , 'a\\'b', 10",
        "select ünïcode_9 from t where x = 12",
        "update x set a = a+1, b=b-2 where k=3",
    ]
    got = [
        r[0]
        for r in spark.createDataFrame([(s,) for s in statements], "s string")
        .select(spark_rows.fingerprint_key(F.col("s")))
        .collect()
    ]
    con = duckdb.connect()
    fingerprint.install(con)
    expected = [con.execute("select fingerprint_key(?)", [s]).fetchone()[0] for s in statements]
    assert got == expected
    assert [fingerprint.fingerprint(k) for k in got] == [
        fingerprint.fingerprint(s) for s in statements
    ]


@pytest.mark.slow
def test_queries_without_request_ids_use_the_callers_on_both_engines(spark, tmp_path):
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    auth, queries = tmp_path / "a.parquet", tmp_path / "q.parquet"
    con.execute(
        f"copy (select timestamptz '2024-01-19 10:00:00+00' + to_seconds(i * 97) as ts, "  # noqa: S608
        f"'u' || (i % 13) as user_id, case when i % 5 = 0 then 'failure' else 'success' end "
        f"as outcome from range(400) r(i)) to '{auth}' (format parquet)"
    )
    con.execute(
        f"copy (select timestamptz '2024-01-19 10:00:00+00' + to_seconds(i * 31) as ts, "  # noqa: S608
        f"(i % 17) * 1.5 as duration_ms, 'select ' || i as statement, "
        f"case when i % 3 = 0 then 'auth-api' else 'billing' end as caller "
        f"from range(1200) r(i)) to '{queries}' (format parquet)"
    )
    given = {"auth_logs": str(auth), "query_logs": str(queries), "timeline": ""}
    duck = _run(tmp_path, "duck", in_place=True, **given)
    on_spark = _run(tmp_path, "spark", engine="spark", **given)
    scopes = [run.scope() for run in (duck, on_spark)]
    assert scopes[0] == scopes[1] and scopes[0].qpa_method == "caller-ratio"
    assert scopes[0].auth_callers == ("auth-api",)
    periods = [metrics.periods(run.con, run.analysis_params) for run in (duck, on_spark)]
    assert periods[1] == periods[0]
    assert periods[0]["incident"]["auth_queries"] > 0


# --- the acceptance test: postmortem report, both engines, one summary.json ---


@pytest.fixture(scope="module")
def hive(tmp_path_factory) -> Path:
    """The small sample as Hive partitions dt=…/hour=…, as a lake holds it."""
    out = tmp_path_factory.mktemp("lake")
    files = sample.generate(out / "src", scale=0.05, seed=7, fmt="parquet")
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    for kind in ("auth", "queries"):
        con.execute(
            f"copy (select *, strftime(ts, '%Y-%m-%d') as dt, hour(ts) as hour "  # noqa: S608
            f"from read_parquet(?)) to '{out / kind}' (format parquet, partition_by (dt, hour))",
            [str(files[kind])],
        )
    shutil.copy(files["timeline"], out / "timeline.yaml")
    return out


def _report(hive: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        str(Path(sys.executable).parent / "postmortem"),
        "report",
        "--auth",
        str(hive / "auth") + "/",
        "--queries",
        str(hive / "queries") + "/",
        "--timeline",
        str(hive / "timeline.yaml"),
        "--range-start",
        "2024-01-19T08:00:00Z",
        "--range-end",
        "2024-01-19T17:00:00Z",
        "--out",
        str(out),
        "--database",
        str(out.parent / f"{out.name}.duckdb"),
        *extra,
    ]
    env = {**os.environ, "POSTMORTEM_KEY": "spark-test-key"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)


@pytest.mark.slow
def test_report_on_spark_writes_the_summary_of_in_place_and_reads_only_the_range(
    spark, hive, tmp_path
):
    # every data page of every file outside the range is destroyed (footers kept): both
    # engines must prune them by the ts statistics to succeed
    outside = [
        p for p in (hive / "auth").rglob("*.parquet") if not 8 <= int(p.parent.name[5:]) < 17
    ] + [p for p in (hive / "queries").rglob("*.parquet") if not 8 <= int(p.parent.name[5:]) < 17]
    assert outside
    kept = {p: p.read_bytes() for p in outside}
    for p, data in kept.items():
        footer = int.from_bytes(data[-8:-4], "little") + 8
        p.write_bytes(data[:4] + b"\xff" * (len(data) - footer - 4) + data[len(data) - footer :])
    try:
        duck = _report(hive, tmp_path / "duck", "--in-place")
        assert duck.returncode == 0, duck.stderr
        on_spark = _report(hive, tmp_path / "spark", "--engine", "spark")
        assert on_spark.returncode == 0, on_spark.stderr
    finally:
        for p, data in kept.items():
            p.write_bytes(data)
    a = (tmp_path / "duck" / "summary.json").read_bytes()
    b = (tmp_path / "spark" / "summary.json").read_bytes()
    assert b == a
    s = json.loads(b)
    assert s["impact"]["users_affected"] > 0 and s["dimensions"][0]["value"] == "eu-west"
    figures = sorted(p.name for p in (tmp_path / "duck" / "figures").iterdir())
    assert len(figures) == 12  # six charts, PNG and SVG
    for name in ["postmortem.md", "SENSITIVE-bypass-users.csv"] + [
        f"figures/{f}" for f in figures
    ]:
        assert (tmp_path / "spark" / name).read_bytes() == (tmp_path / "duck" / name).read_bytes()
    manifest = json.loads((tmp_path / "spark" / "manifest.json").read_text())
    read = {Path(i["path"]).parent.name for i in manifest["inputs"] if i["kind"] != "timeline"}
    assert read == {f"hour={h}" for h in range(8, 17)}
    assert manifest["parameters"]["engine"] == "spark"
    assert manifest["packages"]["pyspark"].startswith("4.")
