"""The report as the notebook makes it: :class:`Run` loads, analyses, charts and writes.

The notebook does the work (load, analyse, chart, write) so that the plain papermill CLI
gives the same report as ``postmortem report``; :mod:`analysis.report.command` adds the checks
before, the HTML after and the staging folder, :mod:`analysis.report.verify` the manifest check.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from analysis import alerts, config, db, engines, figures, ingest, privacy, times
from analysis.figures import Params, server_events
from analysis.kinds import LoadResult
from analysis.report import draft, findings, manifest, params

# jupysql imports pyspark when the spark extra is installed, and PySpark 4.3 warns about pandas
# 3 with a path of the machine in the message: not a finding, and no path belongs in a report
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)

STAGING_ENV = "POSTMORTEM_STAGING_DIR"
NOTEBOOK = "incident_report.ipynb"
EXPLORE_NOTEBOOK = "explore.ipynb"
#: executed by `postmortem report`, in this order (the first writes the evidence)
NOTEBOOKS = (NOTEBOOK, EXPLORE_NOTEBOOK)
SENSITIVE_FILE = "SENSITIVE-bypass-users.csv"
TIMINGS_PREFIX = "step timings:"


def notebooks_of(parameters: dict[str, Any]) -> tuple[str, ...]:
    """The notebooks a report runs: the exploration only when asked for (``exploration``,
    flag ``--explore``: it cost 4 s of a 19 s report of 0.6M rows), and never when only
    Spark can read the inputs (``engine`` spark with URIs such as ``s3a://…``): it reads
    rows."""
    if not parameters.get("exploration"):
        return (NOTEBOOK,)
    engine = engines.engine_of(parameters)
    if not all(
        engine.is_file(t)
        for key in ("auth_logs", "query_logs")
        for t in params.input_list(parameters[key])
    ):
        return (NOTEBOOK,)
    return NOTEBOOKS


#: the charts the notebook's own process draws while a helper process draws the others
OWN_CHARTS = findings.own_charts()
#: the inputs an engine attaches where they are, by kind and parameter
_ROW_INPUTS = (("auth", "auth_logs"), ("queries", "query_logs"))


@dataclass
class Run:
    """One report: parameters in, evidence out. The notebook drives it cell by cell."""

    parameters: dict[str, Any]
    say: Callable[[str], None] = print
    con: duckdb.DuckDBPyConnection | None = None
    loaded: LoadResult | None = None
    result: figures.Analysis | None = None
    #: the alert rules of ``alerts/`` (issue 18), made by :meth:`analyse`
    alert_set: alerts.AlertSet | None = None
    figures: dict[str, list[Path]] = field(default_factory=dict)
    #: the process drawing every other chart, and its charts not yet asked for
    _helper: ProcessPoolExecutor | None = None
    _helper_started: bool = False
    _pending: dict[str, Future] = field(default_factory=dict)
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
    def engine(self) -> engines.Engine:
        """Where this report's rows are read (:mod:`analysis.engines`)."""
        return engines.engine_of(self.parameters)

    @property
    def analysis_params(self) -> Params:
        """The parameters every figure takes."""
        p = self.parameters
        codes = list(p["user_error_codes"])
        for code in self.loaded.user_codes if self.loaded else ():
            if code not in codes:
                codes.append(code)
        return Params(
            start=times.parse_instant(p["incident_start"]),
            end=times.parse_instant(p["incident_end"]),
            bucket=p["bucket"],
            user_error_codes=tuple(codes),
            slo_target=float(p["slo_target"]),
            slo_window_days=params.slo_window_days(p["slo_window"]),
        )

    def input_files(self, key: str) -> list[Path]:
        """The files of one input parameter, as they will be read (URIs, which only Spark
        reads, are not files here)."""
        texts = [params.resolve_path(t) for t in params.input_list(self.parameters[key])]
        return ingest.expand_inputs([t for t in texts if self.engine.is_file(t)])

    # --- the steps ---

    def load(
        self, *, progress: Callable[[str], None] | None = None, rows: bool = False
    ) -> LoadResult:
        """Load the inputs (files loaded before are found by their SHA-256, not reloaded).

        ``progress`` takes the loader's progress lines (by default :attr:`say`); the notebook
        gives a :class:`ProgressLine`, which keeps one line and replaces it. An engine that
        does not load rows attaches the auth and query inputs where they are; ``rows`` (the
        exploration notebook, which reads rows) asks for the engine's local stand-in.
        """
        started = time.monotonic()
        p = self.parameters
        # matplotlib and the charts (0.4 s) are imported while DuckDB loads, which leaves
        # the interpreter free; the first chart would wait for them otherwise
        threading.Thread(target=importlib.import_module, args=("analysis.report.charts",)).start()
        self.database.parent.mkdir(parents=True, exist_ok=True)
        self.con = db.connect_waiting(self.database, say=self.say)
        engine = self.engine.for_rows() if rows else self.engine
        self.loaded = ingest.load(
            self.con,
            auth=self.input_files("auth_logs") if engine.loads_rows else None,
            queries=self.input_files("query_logs") if engine.loads_rows else None,
            timeline=self.input_files("timeline"),
            auth_format=p["auth_format"],
            query_format=p["query_format"],
            source_timezone=p["source_timezone"],
            log_line_prefix=p["log_line_prefix"] or None,
            year=p["year"] or None,
            login_paths=p["login_path"],
            progress=self.say if progress is None else progress,
        )
        if engine.attach is not None:
            self.con, read = engine.attach(
                self.con,
                {kind: self._texts(key) for kind, key in _ROW_INPUTS},
                {kind: self.input_files(key) for kind, key in _ROW_INPUTS},
                self.time_range,
                p,
                self.say,
            )
            self.loaded.files.extend(read)
        self._timed("load", started)
        return self.loaded

    def _texts(self, key: str) -> list[str]:
        """One input parameter's paths, globs or URIs as given, resolved in the project."""
        return [params.resolve_path(t) for t in params.input_list(self.parameters[key])]

    def loading_summary(self) -> list[str]:
        """A short account of the load: one line per kind of input (files by their name or
        their path in the project, never the machine's), and the loader's notes once each."""
        assert self.loaded is not None, "load() first"
        return loading_summary(self.loaded)

    @property
    def time_range(self) -> tuple[datetime, datetime]:
        """The instants analysed: ``range_start``/``range_end``, else all the data."""
        p = self.parameters
        lo = times.parse_instant(p["range_start"]) if p["range_start"] else times.ALL_TIME[0]
        hi = times.parse_instant(p["range_end"]) if p["range_end"] else times.ALL_TIME[1]
        return lo, hi

    def scope(self, *, everything: bool = False) -> figures.Scope:
        """The views of this report's rows (with ``everything``, of every source)."""
        assert self.con is not None and self.loaded is not None, "load() first"
        ids = {k: None if everything else self.loaded.source_ids(k) for k in params.KINDS}
        return figures.scope(
            self.con, **ids, time_range=self.time_range, attached=not self.engine.loads_rows
        )

    def analyse(self) -> figures.Analysis:
        """Every figure of ``summary.json``, for exactly the inputs of this report."""
        assert self.con is not None and self.loaded is not None, "load() first"
        started = time.monotonic()
        scope = self.scope()
        p = self.parameters
        self.result = figures.analyse(
            self.con,
            self.analysis_params,
            scope,
            incident_id=p["incident_id"],
            load_result=self.loaded,
            redacted=bool(p["redact_users"]),
        )
        self.alert_set = alerts.for_report(
            self.con, self.result, self.analysis_params, p["alert_metrics"]
        )
        figures.with_alerts(self.result.summary, self.alert_set.summary, self.alert_set.skipped)
        self._timed("analysis", started)
        return self.result

    @property
    def summary(self) -> dict[str, Any]:
        """The summary of :meth:`analyse`."""
        assert self.result is not None, "analyse() first"
        return self.result.summary

    @property
    def used_params(self) -> Params:
        """The parameters the figures were computed with: the bucket may have grown."""
        if self.result is not None and self.result.params is not None:
            return self.result.params
        return self.analysis_params

    def _chart_data(self, *, resolved: bool = False):
        """What the charts are drawn from; ``resolved``: the two tables a chart reads only
        when drawn are read now, so that the data can go to a helper process."""
        from analysis.report import charts

        r, ap = self.result, self.used_params
        assert r is not None
        first_failures: Callable[[], pd.DataFrame] = lambda: figures.first_failures(self.con, ap)  # noqa: E731
        events: Callable[[], pd.DataFrame] = lambda: server_events.series(self.con, ap)  # noqa: E731
        if resolved:
            first_failures = charts.Given(first_failures())
            events = charts.Given(events())
        return charts.ChartData(
            series=r.series,
            error_codes=r.error_codes,
            fingerprints=r.fingerprints,
            dimensions=r.dimensions,
            events=r.timeline,
            declared=(ap.start, ap.end),
            detected=(r.detected.start, r.detected.end) if r.detected else None,
            first_failures=first_failures,
            server_events=events,
            bucket=ap.bucket,
            # five-minute bars of error codes, or the series' bucket when it grew longer
            error_bars="5min" if times.bucket_seconds(ap.bucket) <= 300 else ap.bucket,
        )

    def _start_helper(self) -> None:
        """On the first chart: the charts but :data:`OWN_CHARTS` go to a helper process
        (forked: matplotlib already imported), drawn there while this one draws its own;
        two cores draw six charts in about half the time (issue 16)."""
        if self._helper_started:
            return
        self._helper_started = True
        from analysis.report import charts

        given = [n for n in draft.charts_for(self.summary) if n not in OWN_CHARTS]
        if not given:
            return
        self._helper = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("fork")
        )
        data = self._chart_data(resolved=True)
        titles = draft.chart_titles(self.summary)
        for name in given:
            self._pending[name] = self._helper.submit(
                charts.draw_and_save, name, data, titles[name], self.out_dir / "figures" / name
            )

    def _stop_helper(self) -> None:
        """Collect what the helper drew (the notebook asks for every chart) and stop it."""
        if self._helper is None:
            return
        for name, future in sorted(self._pending.items()):
            self.figures[name] = future.result()
        self._pending.clear()
        self._helper.shutdown()
        self._helper = None

    def chart(self, name: str) -> None:
        """Draw one chart and save it under ``figures/`` as PNG and SVG; nothing, and
        nothing written, when the report has no figure for it (no bypass login, no query
        log, no system failure: see :func:`draft.charts_for`). The charts but
        :data:`OWN_CHARTS` are drawn by a helper process, started by the first call; their
        files are there when this returns."""
        started = time.monotonic()
        from analysis.report import charts  # matplotlib: in the kernel, not in the command

        assert self.result is not None, "analyse() first"
        if name not in charts.CHARTS:
            raise ValueError(f"no chart named {name!r}; one of {', '.join(charts.CHARTS)}")
        if name not in draft.charts_for(self.summary):
            return
        self._start_helper()
        if name in self._pending:
            self.figures[name] = self._pending.pop(name).result()
        else:
            self.figures[name] = charts.draw_and_save(
                name,
                self._chart_data(),
                draft.chart_titles(self.summary)[name],
                self.out_dir / "figures" / name,
            )
        self._timed("charts", started)

    def show(self, name: str):
        """The saved PNG of a chart as an HTML image whose alt text is its finding, so that
        the notebook and its standalone HTML show exactly the file that was written."""
        from IPython.display import HTML, Markdown

        if name not in self.figures:
            return Markdown(f"_No {name.replace('_', ' ')} chart: {findings.absent(name)}._")
        png = self.figures[name][0].read_bytes()
        from analysis.report import charts

        return HTML(charts.html_image(png, draft.chart_titles(self.summary)[name]))

    def write(self) -> dict[str, Any]:
        """Write summary.json, postmortem.md, the sensitive bypass list and manifest.json."""
        assert self.result is not None, "analyse() first"
        started = time.monotonic()
        out = self.out_dir
        out.mkdir(parents=True, exist_ok=True)
        figures.write(self.summary, out / "summary.json")
        # the helper's charts are in figures before the draft names them
        self._stop_helper()
        (out / "postmortem.md").write_text(
            draft.render(self.summary, figures=sorted(self.figures)), encoding="utf-8"
        )
        self._write_bypass_users(out / SENSITIVE_FILE)
        if self.alert_set is not None:
            self.alert_set.write(out / "alerts")
        manifest = self.manifest()
        (out / "manifest.json").write_text(figures.dumps(manifest), encoding="utf-8")
        if self.con is not None:
            self.con.close()
            self.con = None
        self._timed("write", started)
        return manifest

    def _write_bypass_users(self, path: Path) -> None:
        redact = bool(self.parameters["redact_users"])
        df = figures.bypass_users(self.con, redact=redact, key=privacy.pseudonym_key())
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
            unhashed=[
                n
                for nb in notebooks_of(self.parameters)
                for n in (nb, nb.replace(".ipynb", ".html"))
            ],
            packages=self.engine.packages,
        )


def short_path(path: str | Path) -> str:
    """A path as a report shows it: relative to the project when inside it, else the file's
    name (no absolute path of the machine)."""
    p = Path(path)
    try:
        return p.resolve().relative_to(config.PROJECT_ROOT).as_posix()
    except (ValueError, OSError):
        return p.name


def loading_summary(loaded: LoadResult, *, names: int = 3, notes: int = 5) -> list[str]:
    """One line per kind of input: its files (the first ``names`` of them), rows read,
    loaded and rejected; then up to ``notes`` distinct notes of the loader."""
    lines: list[str] = []
    for kind in params.KINDS:
        files = [f for f in loaded.files if f.kind == kind]
        if not files:
            continue
        totals = loaded.totals(kind)
        shown = ", ".join(short_path(f.path) for f in files[:names])
        if len(files) > names:
            shown += f" and {len(files) - names:,} more"
        formats = ", ".join(sorted({f.format for f in files}))
        again = sum(f.already_loaded for f in files)
        reused = ""
        if again:
            which = "" if again == len(files) == 1 else f"{again:,} of them "
            reused = f"; {which}loaded before, not read again"
        lines.append(
            f"{kind:<9} {shown} ({formats}): {totals['rows_read']:,} rows read, "
            f"{totals['rows_loaded']:,} loaded, {totals['rows_rejected']:,} rejected{reused}"
        )
    seen: list[str] = []
    for f in loaded.files:
        for note in f.notes:
            text = note.replace(str(f.path), short_path(f.path))
            if text not in seen:
                seen.append(text)
    lines += [f"          note: {n}" for n in seen[:notes]]
    if len(seen) > notes:
        lines.append(f"          … and {len(seen) - notes:,} more notes")
    return lines


class ProgressLine:
    """A progress callback for a notebook: one output line, rewritten in place, so that the
    saved notebook keeps only its last state (:meth:`finish` replaces it with a summary).
    Outside IPython it says nothing."""

    def __init__(self) -> None:
        self._handle = None

    def _show(self, text: str) -> None:
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return
        if get_ipython() is None:
            return
        data = {"text/plain": text}
        if self._handle is None:
            self._handle = display(data, raw=True, display_id=True)
        else:
            self._handle.update(data, raw=True)

    def __call__(self, line: str) -> None:
        self._show(line)

    def finish(self, lines: list[str]) -> None:
        """Replace the progress line with ``lines``."""
        self._show("\n".join(lines))
