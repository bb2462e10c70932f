"""The report as the notebook makes it: :class:`Run` loads, analyses, charts and writes.

The notebook does the work (load, analyse, chart, write) so that the plain papermill CLI
gives the same report as ``postmortem report``; :mod:`analysis.execute` adds the checks
before, the HTML after and the staging folder, :mod:`analysis.verify` the manifest check.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from analysis import (
    alerts,
    charts,
    config,
    db,
    draft,
    load,
    manifest,
    params,
    privacy,
    registry,
    server_events,
    summary,
    times,
    views,
)
from analysis.metrics import Params

STAGING_ENV = "POSTMORTEM_STAGING_DIR"
NOTEBOOK = "incident_report.ipynb"
EXPLORE_NOTEBOOK = "explore.ipynb"
#: executed by `postmortem report`, in this order (the first writes the evidence)
NOTEBOOKS = (NOTEBOOK, EXPLORE_NOTEBOOK)
SENSITIVE_FILE = "SENSITIVE-bypass-users.csv"
LOCK_WAIT_S = 600
TIMINGS_PREFIX = "step timings:"


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
    #: the alert rules of ``alerts/`` (issue 18), made by :meth:`analyse`
    alert_set: alerts.AlertSet | None = None
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
        codes = list(p["user_error_codes"])
        # a preset knows which of its source's codes are the user's (Auth0 fp, Entra 50126…)
        formats = [f.format for f in self.loaded.files if f.kind == "auth"] if self.loaded else []
        for code in registry.user_codes(formats, given=p["auth_format"]):
            if code not in codes:
                codes.append(code)
        return Params(
            start=times.parse_instant(p["incident_start"]),
            end=times.parse_instant(p["incident_end"]),
            bucket=p["bucket"],
            user_error_codes=tuple(codes),
        )

    def input_files(self, key: str) -> list[Path]:
        """The files of one input parameter, as they will be read."""
        texts = [params.resolve_path(t) for t in params.input_list(self.parameters[key])]
        return load.expand_inputs(texts)

    # --- the steps ---

    def load(self) -> load.LoadResult:
        """Load the inputs (files loaded before are found by their SHA-256, not reloaded)."""
        started = time.monotonic()
        p = self.parameters
        self.database.parent.mkdir(parents=True, exist_ok=True)
        self.con = connect_waiting(self.database, say=self.say)
        in_place = bool(p["in_place"])
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
            login_paths=p["login_path"],
            progress=self.say,
        )
        if in_place:
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

    @property
    def time_range(self) -> tuple[datetime, datetime]:
        """The instants analysed: ``range_start``/``range_end``, else all the data."""
        p = self.parameters
        lo = times.parse_instant(p["range_start"]) if p["range_start"] else times.ALL_TIME[0]
        hi = times.parse_instant(p["range_end"]) if p["range_end"] else times.ALL_TIME[1]
        return lo, hi

    def scope(self, *, everything: bool = False) -> views.Scope:
        """The views of this report's rows (with ``everything``, of every source)."""
        assert self.con is not None and self.loaded is not None, "load() first"
        ids = {k: None if everything else self.loaded.source_ids(k) for k in params.KINDS}
        return views.scope(
            self.con,
            **ids,
            time_range=self.time_range,
            in_place=bool(self.parameters["in_place"]),
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
        p = self.parameters
        self.alert_set = alerts.for_report(
            self.con, self.result, self.analysis_params, p["alert_metrics"]
        )
        s["alerts"], s["alerts_skipped"] = self.alert_set.summary, self.alert_set.skipped
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
        ap = self.analysis_params
        return db.run(
            self.con,
            "first_failures",
            {"codes": list(ap.user_error_codes), "bucket": times.bucket_interval(ap.bucket)},
        ).df()

    def chart(self, name: str):
        """Draw one chart, save it under ``figures/`` as PNG and SVG, and return the figure."""
        assert self.result is not None, "analyse() first"
        started = time.monotonic()
        r, ap = self.result, self.analysis_params
        data = charts.ChartData(
            series=r.series,
            error_codes=r.error_codes,
            fingerprints=r.fingerprints,
            dimensions=r.dimensions,
            events=r.timeline,
            declared=(ap.start, ap.end),
            detected=(r.detected.start, r.detected.end) if r.detected else None,
            first_failures=self.first_failures,
            server_events=lambda: server_events.series(self.con, ap),
            bucket=ap.bucket,
        )
        fig = charts.draw(name, data, title=draft.chart_titles(r.summary)[name])
        self.figures[name] = charts.save_figure(fig, self.out_dir / "figures" / name)
        self._timed("charts", started)
        return fig

    def show(self, name: str):
        """The saved PNG of a chart as an HTML image whose alt text is its finding, so that
        the notebook and its standalone HTML show exactly the file that was written."""
        from IPython.display import HTML

        png = self.figures[name][0].read_bytes()
        return HTML(charts.html_image(png, draft.chart_titles(self.summary)[name]))

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
        if self.alert_set is not None:
            self.alert_set.write(out / "alerts")
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
            db.sql("bypass_users"), {"redact": redact, "key": privacy.pseudonym_key()}
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
        return manifest.build(
            self.parameters,
            self.loaded.files,
            self.out_dir,
            unhashed=[n for nb in NOTEBOOKS for n in (nb, nb.replace(".ipynb", ".html"))],
        )
