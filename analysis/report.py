"""The report as the notebook makes it: :class:`Run` loads, analyses, charts and writes.

The notebook does the work (load, analyse, chart, write) so that the plain papermill CLI
gives the same report as ``postmortem report``; :mod:`analysis.execute` adds the checks
before, the HTML after and the staging folder, :mod:`analysis.verify` the manifest check.
"""

from __future__ import annotations

import os
import platform
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

import analysis
from analysis import charts, config, db, draft, load, metrics, params, summary
from analysis.metrics import Params

STAGING_ENV = "POSTMORTEM_STAGING_DIR"
KEY_ENV = "POSTMORTEM_KEY"
NOTEBOOK = "incident_report.ipynb"
EXPLORE_NOTEBOOK = "explore.ipynb"
#: executed by `postmortem report`, in this order (the first writes the evidence)
NOTEBOOKS = (NOTEBOOK, EXPLORE_NOTEBOOK)
SENSITIVE_FILE = "SENSITIVE-bypass-users.csv"
PACKAGES = ("duckdb", "pandas", "numpy", "pyarrow", "matplotlib", "papermill", "nbconvert")
LOCK_WAIT_S = 600
TIMINGS_PREFIX = "step timings:"


def notebooks_of(parameters: dict[str, Any]) -> tuple[str, ...]:
    """The notebooks a report runs: the exploration reads rows, so it is left out when only
    Spark can read the inputs (``engine`` spark with URIs such as ``s3a://…``)."""
    if parameters.get("engine") == "spark" and any(
        "://" in t
        for key in ("auth_logs", "query_logs")
        for t in params.input_list(parameters[key])
    ):
        return (NOTEBOOK,)
    return NOTEBOOKS


def pseudonym_key() -> str:
    """The key of the user pseudonyms: ``$POSTMORTEM_KEY``, else a local key file made once.

    The key never goes into a report; the same key gives the same pseudonyms.
    """
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV]
    path = config.KEY_FILE
    if not path.exists():
        path.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def sha256_file(path: Path) -> str:
    """SHA-256 of a file."""
    return load.sha256_of(path)


def connect_waiting(
    database: Path,
    *,
    say: Callable[[str], None] = print,
    wait_s: float = LOCK_WAIT_S,
    **options: Any,
) -> duckdb.DuckDBPyConnection:
    """Open the database for writing; while another process holds it, wait and say so."""
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            return db.connect(database, **options)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            if not told:
                say(f"waiting: {database.name} is in use by another postmortem process")
                told = True
            time.sleep(0.5)


@dataclass
class Run:
    """One report: parameters in, evidence out. The notebook drives it cell by cell."""

    parameters: dict[str, Any]
    say: Callable[[str], None] = print
    con: duckdb.DuckDBPyConnection | None = None
    loaded: load.LoadResult | None = None
    result: summary.Analysis | None = None
    figures: dict[str, list[Path]] = field(default_factory=dict)
    #: seconds spent in each step, shown by the notebook and the command (never in a hashed file)
    timings: dict[str, float] = field(default_factory=dict)

    def _timed(self, step: str, started: float) -> None:
        self.timings[step] = self.timings.get(step, 0.0) + time.monotonic() - started

    def timing_line(self) -> str:
        """One line with the seconds of each step, for the notebook's last output."""
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items())
        return f"{TIMINGS_PREFIX} {parts}"

    @classmethod
    def from_parameters(cls, say: Callable[[str], None] = print, **given: Any) -> Run:
        """Check the notebook's parameters and prepare the run."""
        return cls(params.resolve(given), say=say)

    # --- where things are ---

    @property
    def out_dir(self) -> Path:
        """Where files are written: the staging folder of ``postmortem report``, or the
        report folder itself under plain papermill."""
        staging = os.environ.get(STAGING_ENV)
        if staging:
            return Path(staging)
        value = self.parameters["report_dir"]
        if value == str(Path("reports") / self.parameters["incident_id"]):
            return config.PROJECT_ROOT / value
        return Path(value)

    @property
    def database(self) -> Path:
        """The DuckDB file; the default one lives in the project's data folder."""
        value = self.parameters["database"]
        if value == params.DEFAULTS["database"]:
            return config.PROJECT_ROOT / value
        return Path(value)

    @property
    def analysis_params(self) -> Params:
        """The parameters every figure takes."""
        p = self.parameters
        return Params(
            start=metrics.parse_instant(p["incident_start"]),
            end=metrics.parse_instant(p["incident_end"]),
            bucket=p["bucket"],
            user_error_codes=tuple(p["user_error_codes"]),
        )

    def input_files(self, key: str) -> list[Path]:
        """The files of one input parameter, as they will be read (URIs, which only Spark
        reads, are not files here)."""
        texts = [params.resolve_path(t) for t in params.input_list(self.parameters[key])]
        if self.parameters["engine"] == "spark":
            texts = [t for t in texts if "://" not in t]
        return load.expand_inputs(texts)

    # --- the steps ---

    def load(self, *, rows: bool = False) -> load.LoadResult:
        """Load the inputs (files loaded before are found by their SHA-256, not reloaded).

        With ``engine`` spark the auth and query inputs stay where they are and Spark reads
        them; ``rows`` (the exploration notebook, which reads rows) views local Parquet in
        place through DuckDB instead.
        """
        started = time.monotonic()
        p = self.parameters
        self.database.parent.mkdir(parents=True, exist_ok=True)
        self.con = connect_waiting(self.database, say=self.say)
        spark = p["engine"] == "spark"
        in_place = bool(p["in_place"]) or spark
        self.loaded = load.load(
            self.con,
            auth=None if in_place else self.input_files("auth_logs"),
            queries=None if in_place else self.input_files("query_logs"),
            timeline=self.input_files("timeline"),
            auth_format=p["auth_format"],
            query_format=p["query_format"],
            source_timezone=p["source_timezone"],
            log_line_prefix=p["log_line_prefix"] or None,
            year=p["year"] or None,
            progress=self.say,
        )
        if spark and not rows:
            self._attach_spark()
        elif in_place:
            self._attach_in_place()
        self._timed("load", started)
        return self.loaded

    def _attach_in_place(self) -> None:
        """Views over the Parquet inputs instead of a load; hash the files that were read."""
        from analysis import inplace

        assert self.con is not None and self.loaded is not None
        files = {"auth": self.input_files("auth_logs"), "queries": self.input_files("query_logs")}
        self.say(f"in place: {sum(map(len, files.values()))} Parquet files, nothing copied")
        read = inplace.attach(self.con, files, self.time_range)
        for fr in read:
            fr.sha256 = load.cached_sha256(self.con, Path(fr.path))
        self.loaded.files.extend(read)

    def _attach_spark(self) -> None:
        """Spark reads the Parquet inputs; the figures that read rows run there."""
        from analysis import spark_engine

        assert self.con is not None and self.loaded is not None
        p = self.parameters
        texts = {
            kind: [params.resolve_path(t) for t in params.input_list(p[key])]
            for kind, key in (("auth", "auth_logs"), ("queries", "query_logs"))
        }
        self.say(f"spark: {p['spark_master']}, the rows stay in Spark, aggregates come back")
        self.con, read = spark_engine.attach(
            self.con,
            texts,
            self.time_range,
            master=p["spark_master"],
            conf=spark_engine.parse_conf(p["spark_conf"]),
        )
        for fr in read:
            if "://" not in fr.path:
                fr.sha256 = load.cached_sha256(self.con.duckdb, Path(fr.path))
        self.loaded.files.extend(read)

    @property
    def time_range(self) -> tuple[datetime, datetime]:
        """The instants analysed: ``range_start``/``range_end``, else all the data."""
        p = self.parameters
        lo = metrics.parse_instant(p["range_start"]) if p["range_start"] else metrics.ALL_TIME[0]
        hi = metrics.parse_instant(p["range_end"]) if p["range_end"] else metrics.ALL_TIME[1]
        return lo, hi

    def scope(self, *, everything: bool = False) -> metrics.Scope:
        """The views of this report's rows (with ``everything``, of every source)."""
        assert self.con is not None and self.loaded is not None, "load() first"
        ids = {k: None if everything else self.loaded.source_ids(k) for k in params.KINDS}
        return metrics.scope(
            self.con,
            **ids,
            time_range=self.time_range,
            in_place=bool(self.parameters["in_place"]) or self.parameters["engine"] == "spark",
        )

    def analyse(self) -> summary.Analysis:
        """Every figure of ``summary.json``, for exactly the inputs of this report."""
        assert self.con is not None and self.loaded is not None, "load() first"
        started = time.monotonic()
        scope = self.scope()
        self.result = summary.analyse(
            self.con,
            self.analysis_params,
            scope,
            incident_id=self.parameters["incident_id"],
            load_result=self.loaded,
        )
        s = self.result.summary
        s["redacted"] = bool(self.parameters["redact_users"])
        self._timed("analysis", started)
        return self.result

    @property
    def summary(self) -> dict[str, Any]:
        """The summary of :meth:`analyse`."""
        assert self.result is not None, "analyse() first"
        return self.result.summary

    def first_failures(self) -> pd.DataFrame:
        """Per bucket, how many users had their first system failure then."""
        assert self.con is not None
        return self.con.execute(
            """
            with firsts as (
                select user_id, min(ts) as first
                from v_auth
                where is_system_failure(outcome, error_code, $codes)
                group by user_id
            ), final as (
                select time_bucket($bucket::interval, first) as bucket, count(*) as users
                from firsts group by 1
            )
            select * from final order by bucket
            """,
            {
                "codes": list(self.analysis_params.user_error_codes),
                "bucket": metrics.bucket_interval(self.analysis_params.bucket),
            },
        ).df()

    def chart(self, name: str):
        """Draw one chart, save it under ``figures/`` as PNG and SVG, and return the figure."""
        assert self.result is not None, "analyse() first"
        started = time.monotonic()
        r, s, ap = self.result, self.result.summary, self.analysis_params
        declared = (ap.start, ap.end)
        detected = (r.detected.start, r.detected.end) if r.detected else None
        titles = draft.chart_titles(s)
        if name == "overview":
            fig = charts.plot_overview(
                r.series,
                declared=declared,
                detected=detected,
                events=r.timeline,
                title=titles["overview"],
            )
        else:
            fig = charts.Figure(figsize=(10, 4.5), layout="constrained")
            ax = fig.add_subplot()
            if name == "error_codes":
                charts.plot_error_codes(
                    r.error_codes, declared=declared, title=titles[name], ax=ax
                )
            elif name == "fingerprints":
                charts.plot_fingerprints(r.fingerprints, title=titles[name], ax=ax)
            elif name == "affected_users":
                charts.plot_affected_users(
                    self.first_failures(), declared=declared, title=titles[name], ax=ax
                )
            elif name == "dimensions":
                charts.plot_dimensions(r.dimensions, title=titles[name], ax=ax)
            elif name == "bypass":
                charts.plot_bypass(
                    r.series, declared=declared, events=r.timeline, title=titles[name], ax=ax
                )
            else:
                raise ValueError(f"no chart named {name!r}; see draft.CHARTS")
        self.figures[name] = charts.save_figure(fig, self.out_dir / "figures" / name)
        self._timed("charts", started)
        return fig

    def show(self, name: str):
        """The saved PNG of a chart as an HTML image whose alt text is its finding, so that
        the notebook and its standalone HTML show exactly the file that was written."""
        import base64
        import html

        from IPython.display import HTML

        data = base64.b64encode(self.figures[name][0].read_bytes()).decode("ascii")
        alt = html.escape(draft.chart_titles(self.summary)[name], quote=True)
        return HTML(
            f'<img alt="{alt}" style="max-width: 100%" src="data:image/png;base64,{data}">'
        )

    def write(self) -> dict[str, Any]:
        """Write summary.json, postmortem.md, the sensitive bypass list and manifest.json."""
        assert self.result is not None, "analyse() first"
        started = time.monotonic()
        out = self.out_dir
        out.mkdir(parents=True, exist_ok=True)
        summary.write(self.summary, out / "summary.json")
        (out / "postmortem.md").write_text(
            draft.render(self.summary, figures=sorted(self.figures)), encoding="utf-8"
        )
        self._write_bypass_users(out / SENSITIVE_FILE)
        manifest = self.manifest()
        (out / "manifest.json").write_text(summary.dumps(manifest), encoding="utf-8")
        if self.con is not None:
            self.con.close()
            self.con = None
        self._timed("write", started)
        return manifest

    def _write_bypass_users(self, path: Path) -> None:
        redact = bool(self.parameters["redact_users"])
        df = self.con.execute(
            metrics.sql("bypass_users"), {"redact": redact, "key": pseudonym_key()}
        ).df()
        header = (
            "# SENSITIVE: users who logged in without the database check; re-verify them.\n"
            + (
                "# user ids are keyed pseudonyms (redact_users=True)\n"
                if redact
                else "# user ids are IN CLEAR (redact_users=False)\n"
            )
        )
        path.write_text(header + df.to_csv(index=False, lineterminator="\n"), encoding="utf-8")

    def manifest(self) -> dict[str, Any]:
        """Inputs with hashes and counts, parameters, versions, and every output's hash."""
        assert self.loaded is not None
        out = self.out_dir
        inputs = [
            {
                "kind": f.kind,
                "path": _portable(f.path),
                "format": f.format,
                "sha256": f.sha256,
                "rows_read": f.rows_read,
                "rows_loaded": f.rows_loaded,
                "rows_rejected": f.rows_rejected,
            }
            for f in self.loaded.files
        ]
        hashed = sorted(
            p
            for p in out.rglob("*")
            if p.is_file() and p.suffix not in (".ipynb", ".html") and p.name != "manifest.json"
        )
        outputs = [
            {"path": p.relative_to(out).as_posix(), "sha256": sha256_file(p)} for p in hashed
        ]
        outputs += [
            {"path": name, "sha256": None, "note": "records when it ran; not hashed"}
            for nb in notebooks_of(self.parameters)
            for name in (nb, nb.replace(".ipynb", ".html"))
        ]
        parameters = {k: v for k, v in self.parameters.items() if k not in params.LOCATIONS}
        for key in params.INPUTS:
            parameters[key] = [
                _portable(params.resolve_path(t)) for t in params.input_list(self.parameters[key])
            ]
        return {
            "incident_id": self.parameters["incident_id"],
            "generator": f"postmortem-lab {analysis.__version__}",
            "parameters": parameters,
            "inputs": inputs,
            "packages": package_versions(spark=self.parameters["engine"] == "spark"),
            "outputs": outputs,
        }


def _portable(path: Path | str) -> str:
    """A path as the manifest records it: relative to the project when inside it (a URI,
    which only Spark reads, as it is)."""
    if "://" in str(path):
        return str(path)
    path = Path(path)
    try:
        return path.resolve().relative_to(config.PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path.resolve())


def package_versions(*, spark: bool = False) -> dict[str, str]:
    """Versions of Python and of the packages that shape the evidence."""
    out = {"python": platform.python_version(), "postmortem-lab": analysis.__version__}
    for name in PACKAGES + (("pyspark",) if spark else ()):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
