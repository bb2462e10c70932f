"""The report: what the notebook calls (:class:`Run`) and what ``postmortem report`` and
``postmortem verify`` do around it (papermill, HTML, an atomic rename, the manifest check).

The notebook does the work (load, analyse, chart, write) so that the plain papermill CLI
gives the same report as ``postmortem report``; the command adds the checks before, the HTML
after, and writes into a staging folder that is renamed into place only when all went well.
"""

from __future__ import annotations

import os
import platform
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

import analysis
from analysis import charts, config, db, draft, load, metrics, params, summary
from analysis.metrics import Params, iso

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
        self.loaded = load.load(
            self.con,
            auth=self.input_files("auth_logs"),
            queries=self.input_files("query_logs"),
            timeline=self.input_files("timeline"),
            auth_format=p["auth_format"],
            query_format=p["query_format"],
            source_timezone=p["source_timezone"],
            progress=self.say,
        )
        self._timed("load", started)
        return self.loaded

    def analyse(self) -> summary.Analysis:
        """Every figure of ``summary.json``, for exactly the inputs of this report."""
        assert self.con is not None and self.loaded is not None, "load() first"
        started = time.monotonic()
        scope = metrics.scope(
            self.con,
            auth=self.loaded.source_ids("auth"),
            queries=self.loaded.source_ids("queries"),
            timeline=self.loaded.source_ids("timeline"),
        )
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
        df["first"] = df["first"].map(iso)
        df["last"] = df["last"].map(iso)
        path.write_text(header + df.to_csv(index=False, lineterminator="\n"), encoding="utf-8")

    def manifest(self) -> dict[str, Any]:
        """Inputs with hashes and counts, parameters, versions, and every output's hash."""
        assert self.loaded is not None
        out = self.out_dir
        inputs = [
            {
                "kind": f.kind,
                "path": _portable(Path(f.path)),
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
            for nb in NOTEBOOKS
            for name in (nb, nb.replace(".ipynb", ".html"))
        ]
        parameters = {k: v for k, v in self.parameters.items() if k not in params.LOCATIONS}
        for key in params.INPUTS:
            parameters[key] = [
                _portable(Path(params.resolve_path(t)))
                for t in params.input_list(self.parameters[key])
            ]
        return {
            "incident_id": self.parameters["incident_id"],
            "generator": f"postmortem-lab {analysis.__version__}",
            "parameters": parameters,
            "inputs": inputs,
            "packages": package_versions(),
            "outputs": outputs,
        }


def _portable(path: Path) -> str:
    """A path as the manifest records it: relative to the project when inside it."""
    try:
        return path.resolve().relative_to(config.PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path.resolve())


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape the evidence."""
    out = {"python": platform.python_version(), "postmortem-lab": analysis.__version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# --- postmortem report ---


def gather_parameters(args: Any) -> dict[str, Any]:
    """Config file values overlaid with the flags that were given."""
    given: dict[str, Any] = {}
    if getattr(args, "config", None):
        given.update(params.read_config(args.config))
    for key in params.DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            given[key] = value
    return params.resolve(given)


def main(args: Any, say: Callable[[str], None]) -> int:
    """``postmortem report``: check, execute the notebook, convert, move into place."""
    started = time.monotonic()
    p = gather_parameters(args)
    run = Run(p, say=say)
    for key in params.INPUTS:
        run.input_files(key)  # a missing input stops here, before a kernel starts
    final = run.out_dir
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    staging.chmod(0o755)
    try:
        for name in NOTEBOOKS:
            began = time.monotonic()
            execute(p, staging, quiet=getattr(args, "quiet", False), notebook=name)
            to_html(staging / name)
            if not getattr(args, "quiet", False):
                print(
                    f"  {name}: {time.monotonic() - began:.1f} s ({step_timings(staging / name)})",
                    file=sys.stderr,
                )
        swap_into_place(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    s = summary_from_text((final / "summary.json").read_text(encoding="utf-8"))
    for key in ("auth", "queries", "timeline"):
        counts = s["ingest"].get(key)
        if counts:
            print(
                f"{key:<9} {counts['rows_read']:,} read, {counts['rows_loaded']:,} loaded, "
                f"{counts['rows_rejected']:,} rejected"
            )
    print(draft.headline(s))
    print(f"report written to {final} in {time.monotonic() - started:.1f} s")
    return 0


def step_timings(notebook: Path) -> str:
    """The step timings an executed notebook printed, or '' when it printed none."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("text", "")
            if TIMINGS_PREFIX in text:
                return text.split(TIMINGS_PREFIX, 1)[1].strip()
    return "kernel start-up and display"


def swap_into_place(staging: Path, final: Path) -> None:
    """Rename a finished staging folder to ``final``, moving an older report aside first.

    Two runs may finish at once: each retries until its own rename wins, so the folder in
    place is always one complete report, never a mix.
    """
    for attempt in range(50):
        try:
            staging.rename(final)
            break
        except OSError:
            old = final.with_name(f".{final.name}.old-{os.getpid()}-{attempt}")
            try:
                final.rename(old)
            except FileNotFoundError:
                continue  # the other run moved it first; try again
            shutil.rmtree(old, ignore_errors=True)
    else:
        raise ReportError(f"{final}: could not be replaced (is a file open in it?)")


def summary_from_text(text: str) -> dict[str, Any]:
    """Parse a summary.json text."""
    import json

    return json.loads(text)


def execute(
    p: dict[str, Any], staging: Path, *, quiet: bool = False, notebook: str = NOTEBOOK
) -> None:
    """Run one notebook through papermill into ``staging``.

    A failing cell becomes one :class:`ReportError` naming the notebook and the cell.
    """
    import logging

    import papermill as pm

    # papermill warns about things we check ourselves (unknown parameters) and logs every
    # cell's output at INFO; the progress bar is what a person at a terminal wants
    logging.getLogger("papermill").setLevel(logging.ERROR)
    nb_in = config.NOTEBOOKS_DIR / notebook
    previous = os.environ.get(STAGING_ENV)
    os.environ[STAGING_ENV] = str(staging)
    try:
        pm.execute_notebook(
            str(nb_in),
            str(staging / notebook),
            parameters=p,
            progress_bar=not quiet and sys.stderr.isatty(),
            log_output=False,
            cwd=os.getcwd(),
            kernel_name="python3",
            # the kernel's own start-up warnings (TCP on loopback) are not the user's business
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except pm.PapermillExecutionError as exc:
        cell = _cell_label(staging / notebook, exc.cell_index)
        raise ReportError(
            f"{notebook}, cell {exc.exec_count or exc.cell_index} ({cell}) failed: "
            f"{exc.ename}: {' '.join(str(exc.evalue).split())}"
        ) from None
    finally:
        if previous is None:
            os.environ.pop(STAGING_ENV, None)
        else:
            os.environ[STAGING_ENV] = previous


class ReportError(RuntimeError):
    """The report could not be made; the message says where and why."""


def _cell_label(path: Path, index: int) -> str:
    """The first line of a cell's source, to name it in an error."""
    try:
        import nbformat

        nb = nbformat.read(path, as_version=4)
        first = nb.cells[index].source.strip().splitlines()[0]
        return first[:60]
    except Exception:  # the label is a nicety; the error itself must still be reported
        return "?"


def to_html(notebook: Path) -> Path:
    """HTML of an executed notebook: code hidden, images embedded, one standalone file."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    nb = nbformat.read(notebook, as_version=4)
    body, _ = exporter.from_notebook_node(nb)
    # a report opened offline must not reach for the internet: no math and no widgets here,
    # so MathJax and require.js (fetched from a CDN by the template) are left out
    body = re.sub(
        r"\s*<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", "", body, flags=re.S
    )
    body = re.sub(r'\s*<script src="https?://[^"]*"></script>', "", body)
    target = notebook.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


# --- postmortem verify ---


def verify_main(report_dir: Path, say: Callable[[str], None]) -> int:
    """Re-run a report from its manifest into a temporary folder and compare every hash."""
    import json

    manifest_path = report_dir / "manifest.json"
    if not manifest_path.exists():
        raise ReportError(f"{report_dir}: no manifest.json; is it a report folder?")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    problems: list[str] = []
    for item in manifest["inputs"]:
        path = _from_portable(item["path"])
        if not path.exists():
            problems.append(f"input {item['path']}: missing")
        elif sha256_file(path) != item["sha256"]:
            problems.append(f"input {item['path']}: SHA-256 differs from the manifest")
    for item in manifest["outputs"]:
        if item.get("sha256") is None:
            continue
        path = report_dir / item["path"]
        if not path.exists():
            problems.append(f"output {item['path']}: missing")
        elif sha256_file(path) != item["sha256"]:
            problems.append(f"output {item['path']}: changed since the report was written")
    if problems:
        for line in problems:
            print(f"MISMATCH {line}")
        print(f"verify: {report_dir} does NOT match its manifest ({len(problems)} problem(s))")
        return 1
    given = dict(manifest["parameters"])
    with tempfile.TemporaryDirectory(prefix="postmortem-verify-") as tmp:
        tmp_path = Path(tmp)
        given["database"] = str(tmp_path / "verify.duckdb")
        given["report_dir"] = str(tmp_path / "report")
        for key in params.INPUTS:
            given[key] = [str(_from_portable(v)) for v in given[key]]
        say("re-running the report from the manifest's inputs and parameters")
        p = params.resolve(given)
        staging = tmp_path / "report"
        staging.mkdir()
        execute(p, staging, quiet=True)
        for item in manifest["outputs"]:
            if item.get("sha256") is None:
                continue
            again = staging / item["path"]
            if not again.exists():
                problems.append(f"output {item['path']}: not produced by the re-run")
            elif sha256_file(again) != item["sha256"]:
                problems.append(f"output {item['path']}: the re-run gives different bytes")
    if problems:
        for line in problems:
            print(f"MISMATCH {line}")
        print(f"verify: {report_dir} is NOT reproduced ({len(problems)} problem(s))")
        return 1
    n = sum(1 for item in manifest["outputs"] if item.get("sha256"))
    print(f"verify: OK, {len(manifest['inputs'])} inputs and {n} outputs match {report_dir}")
    return 0


def _from_portable(text: str) -> Path:
    p = Path(text)
    return p if p.is_absolute() else config.PROJECT_ROOT / p
