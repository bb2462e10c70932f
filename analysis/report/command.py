"""``postmortem report``: check the parameters, execute the notebooks through papermill into a
staging folder, convert them to HTML, and rename the folder into place only when all went well.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from analysis import config, db
from analysis.errors import ReportError
from analysis.report import draft, params
from analysis.report.run import NOTEBOOK, STAGING_ENV, TIMINGS_PREFIX, Run, notebooks_of


def gather_parameters(args: Any) -> dict[str, Any]:
    """The incident folder's ``incident.yaml`` (or ``--config``) overlaid with the flags that
    were given."""
    given: dict[str, Any] = {}
    config_file = getattr(args, "config", None) or (
        config.CONFIG_FILE if config.CONFIG_FILE.is_file() else None
    )
    if config_file:
        given.update(params.read_config(config_file))
    for key in params.DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            given[key] = value
    # the sample's files are the defaults only while no input is named: a report on your own
    # auth log must not pick up the sample's queries and timeline for the ones you left out
    if any(key in given for key in params.INPUTS):
        for key in params.INPUTS:
            given.setdefault(key, "")
    return params.resolve(given)


def main(args: Any, say: Callable[[str], None]) -> int:
    """``postmortem report``: check, execute the notebook, convert, move into place."""
    started = time.monotonic()
    p = gather_parameters(args)
    if getattr(args, "memory_limit", None):
        os.environ[db.MEMORY_ENV] = args.memory_limit
    if getattr(args, "threads", None):
        os.environ[db.THREADS_ENV] = str(args.threads)
    run = Run(p, say=say)
    final = run.out_dir
    _check_before_the_kernel(run, final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    staging.chmod(0o755)
    previous = os.environ.get(STAGING_ENV)
    new_database = not run.database.exists()
    try:
        _run_notebooks(p, staging, quiet=bool(getattr(args, "quiet", False)))
        swap_into_place(staging, final)
    except BaseException:
        if new_database:  # a failed report leaves no database behind, as it found none
            for leftover in (run.database, run.database.with_name(run.database.name + ".wal")):
                leftover.unlink(missing_ok=True)
        raise
    finally:
        if previous is None:
            os.environ.pop(STAGING_ENV, None)
        else:
            os.environ[STAGING_ENV] = previous
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    _print_outcome(final, started)
    return 0


def _check_before_the_kernel(run: Run, final: Path) -> None:
    """Refuse, before a kernel starts, a folder that is not a report, an engine that is not
    installed, or an input that is missing or of the wrong kind."""
    # checked first: whatever else is wrong, a folder that is not a report is never replaced
    if final.exists() and (
        not final.is_dir() or (any(final.iterdir()) and not (final / "manifest.json").exists())
    ):
        raise ReportError(
            f"{final}: exists and is not a report folder (no manifest.json); a report replaces "
            "its folder, so choose another --out"
        )
    run.engine.prepare()  # e.g. without PySpark, one line saying how to install it
    files = {key: run.input_files(key) for key in params.INPUTS}
    run.engine.check({"auth": files["auth_logs"], "queries": files["query_logs"]})


def _run_notebooks(p: dict[str, Any], staging: Path, *, quiet: bool) -> None:
    """Execute the report's notebooks into ``staging``, each converted to HTML while the
    next one runs (its kernel is a process of its own; nbconvert's first conversion takes
    about 2 s)."""
    # papermill and nbconvert are imported here, on this thread, before the converter
    # starts: both import jupyter_client, whose modules import each other, and two
    # threads importing it at once can meet a partially initialised module (CI saw
    # "cannot import name 'AsyncKernelManager' from partially initialized module").
    # After papermill, nbconvert's own import is 0.2 s; the templates stay in the thread.
    # The first notebook's kernel boots (0.6-0.7 s) while they import (about 1 s); it
    # inherits the staging folder from the environment, as papermill's would
    os.environ[STAGING_ENV] = str(staging)
    km = start_kernel()
    try:
        import nbconvert  # noqa: F401
        import papermill  # noqa: F401

        with ThreadPoolExecutor(max_workers=1) as converter:
            # nbconvert's first conversion loads its templates (0.9 s, then 0.2 s each):
            # done while the kernel, a process of its own, runs the notebook
            converter.submit(warm_html)
            pages = []
            notebooks = notebooks_of(p)
            if len(notebooks) == 1 and p["exploration"] and not quiet:
                print(
                    "  explore.ipynb: left out (it reads rows; only Spark reads these URIs)",
                    file=sys.stderr,
                )
            for name in notebooks:
                began = time.monotonic()
                # execute stops the kernel; a later notebook gets one of its own from papermill
                kernel, km = km, None
                execute(p, staging, quiet=quiet, notebook=name, km=kernel)
                pages.append(converter.submit(to_html, staging / name))
                if not quiet:
                    print(
                        f"  {name}: {time.monotonic() - began:.1f} s "
                        f"({step_timings(staging / name)})",
                        file=sys.stderr,
                    )
            for page in pages:
                page.result()
    finally:
        if km is not None:  # started, and its notebook never ran
            stop_kernel(km)


def _print_outcome(final: Path, started: float) -> None:
    """What was read, loaded and rejected, the headline, and where the report is."""
    s = json.loads((final / "summary.json").read_text(encoding="utf-8"))
    for key in ("auth", "queries", "timeline"):
        counts = s["ingest"].get(key)
        if counts:
            skipped = counts.get("rows_skipped")
            print(
                f"{key:<9} {counts['rows_read']:,} read, {counts['rows_loaded']:,} loaded, "
                f"{counts['rows_rejected']:,} rejected"
                + (f", {skipped:,} skipped" if skipped else "")
            )
    print(draft.headline(s))
    print(f"report written to {final} in {time.monotonic() - started:.1f} s")


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
            if (old / "manifest.json").exists() or not any(old.iterdir()):
                shutil.rmtree(old, ignore_errors=True)  # only ever an earlier report
    else:
        raise ReportError(f"{final}: could not be replaced (is a file open in it?)")


#: the kernel's own start-up warnings (TCP on loopback) are not the user's business
#: the report's kernels keep no input history: it would hold every report's parameters (its
#: incident and its files) in the user's ~/.ipython, outside the incident folder
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR", "--HistoryManager.enabled=False"]


def start_kernel() -> Any:
    """Start the project's kernel (``python3``) in the working directory; it boots while
    the caller goes on, and :func:`execute` runs a notebook in it. The manager keeps the
    clients made of it (papermill's among them), for :func:`stop_kernel` to close."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    class Manager(AsyncKernelManager):
        def client(self, **kwargs: Any) -> Any:
            made = super().client(**kwargs)
            self.made_clients.append(made)
            return made

    km = Manager(kernel_name="python3")
    km.made_clients = []
    run_sync(km.start_kernel)(extra_arguments=KERNEL_ARGUMENTS, cwd=os.getcwd())
    return km


def stop_kernel(km: Any) -> None:
    """Close the clients of a kernel of :func:`start_kernel` and shut it down as papermill
    does: gracefully, so that the kernel's exit handlers run (an in-place report removes
    its session file there)."""
    from jupyter_core.utils import run_sync

    for made in km.made_clients:
        made.stop_channels()
    try:
        if km.has_kernel:
            run_sync(km.shutdown_kernel)(now=False)
    except RuntimeError:  # "No kernel is running!": it is gone already
        pass
    finally:
        run_sync(km.cleanup_resources)()


def execute(
    p: dict[str, Any],
    staging: Path,
    *,
    quiet: bool = False,
    notebook: str = NOTEBOOK,
    km: Any = None,
) -> None:
    """Run one notebook through papermill into ``staging``, in the kernel of ``km`` (from
    :func:`start_kernel`; shut down here) or in one papermill starts.

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
            extra_arguments=KERNEL_ARGUMENTS,
            **({} if km is None else {"km": km}),
        )
    except pm.PapermillExecutionError as exc:
        cell = _cell_label(staging / notebook, exc.cell_index)
        raise ReportError(
            f"{notebook}, cell {exc.exec_count or exc.cell_index} ({cell}) failed: "
            f"{exc.ename}: {' '.join(str(exc.evalue).split())}"
        ) from None
    finally:
        if km is not None:
            stop_kernel(km)
        if previous is None:
            os.environ.pop(STAGING_ENV, None)
        else:
            os.environ[STAGING_ENV] = previous


def _cell_label(path: Path, index: int) -> str:
    """The first line of a cell's source, to name it in an error."""
    try:
        import nbformat

        nb = nbformat.read(path, as_version=4)
        first = nb.cells[index].source.strip().splitlines()[0]
        return first[:60]
    except Exception:  # the label is a nicety; the error itself must still be reported
        return "?"


def warm_html() -> None:
    """Load nbconvert and its templates with the conversion of an empty notebook."""
    import nbformat

    _exporter().from_notebook_node(nbformat.v4.new_notebook())


def _exporter():
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    return exporter


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def without_widget_views(nb: Any) -> None:
    """Drop the widgets of an executed notebook where an output has another form: the HTML
    loads no script from the internet (see :func:`to_html`), so a widget would be an empty
    box where its static form (the explorer's chart and tables) reads without one; the
    widgets' recorded state goes too, as nothing could draw it."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data and set(data) - {WIDGET_VIEW, "text/plain"}:
                del data[WIDGET_VIEW]


def to_html(notebook: Path) -> Path:
    """HTML of an executed notebook: code hidden, images embedded, one standalone file."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    without_widget_views(nb)
    body, _ = _exporter().from_notebook_node(nb)
    # a report opened offline must not reach for the internet: no math and no widgets here,
    # so MathJax and require.js (fetched from a CDN by the template) are left out
    body = re.sub(
        r"\s*<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", "", body, flags=re.S
    )
    body = re.sub(r'\s*<script src="https?://[^"]*"></script>', "", body)
    target = notebook.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target
