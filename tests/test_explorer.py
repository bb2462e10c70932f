"""The explorer as a person uses it: JupyterLab on loopback, ``explore.ipynb`` opened in
headless Chromium (Playwright, Debian's browser), Run All on the sample, a drag across the
chart to a stretch of the baseline, times typed back into the incident, a worst minute's
"why?" and a fingerprint picked; each time the tables must become what
:func:`analysis.figures.compare_stretches` gives for that stretch.

Nothing is mocked and no browser is downloaded; every process started here is stopped in a
``finally``. Screenshots go to ``reports/explorer/`` (generated, not committed).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import matplotlib.dates as mdates
import papermill
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from analysis import explorer, lab, sample
from analysis.figures import REST, compare_stretches, span
from analysis.report import Run
from tests.test_jupyter import ROOT, STARTUP_S, chromium, free_port, stop

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
SCALE = 0.03
KEY = "test-key-explorer"
SHOTS = ROOT / "reports" / "explorer"
#: the launch arguments of the brief of this test: no GPU, no network of the browser's own
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 60_000
#: the window: the chart, the controls and the first tables in view at once
VIEW_HEIGHT = 1800
READ_TABLE = "t => [...t.rows].map(r => [...r.cells].map(c => c.textContent))"


@pytest.fixture(scope="module")
def incident(tmp_path_factory) -> dict[str, str]:
    """The sample, and the parameters papermill would inject into the notebook."""
    tmp = tmp_path_factory.mktemp("explorer")
    files = sample.generate(tmp / "sample", scale=SCALE, seed=7)
    return {
        "auth_logs": str(files["auth"]),
        "query_logs": str(files["queries"]),
        "timeline": str(files["timeline"]),
        "database": str(tmp / "lab.duckdb"),
        "report_dir": str(tmp / "report"),
    }


@pytest.fixture(scope="module")
def expected(incident, tmp_path_factory) -> Iterator[explorer.Explorer]:
    """The same incident loaded here, as the notebook's first cells load it (another database:
    the kernel holds its own), and an explorer without widgets over it."""
    tmp = tmp_path_factory.mktemp("expected")
    run = Run.from_parameters(say=lambda _: None, **{**incident, "database": str(tmp / "x.db")})
    run.load(rows=True)
    run.scope()
    p = run.analysis_params
    span.limit(run.con, span.find(run.con, p))
    yield explorer.Explorer(run.con, p, key=KEY)
    run.con.close()


@pytest.fixture(scope="module")
def jupyterlab(incident, tmp_path_factory) -> Iterator[str]:
    """``jupyter lab`` on 127.0.0.1 with a random token, serving a folder that holds the
    notebook with the sample's parameters injected; its URL with the token."""
    tmp = tmp_path_factory.mktemp("jupyterlab")
    root = tmp / "incident"
    root.mkdir()
    # as `make lab DATABASE=…` prepares it: papermill injects the parameters, runs nothing
    papermill.execute_notebook(
        ROOT / "notebooks" / "explore.ipynb",
        root / "explore.ipynb",
        parameters=incident,
        prepare_only=True,
        progress_bar=False,
    )
    config = tmp / "config"
    # no news toast over the notebook
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    # every cell drawn, not only those in view, so that a screenshot shows what is there
    tracker = tmp / "settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = free_port(), secrets.token_hex(24)
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_PLATFORM_DIRS": "1",
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
        "POSTMORTEM_KEY": KEY,
    }
    cmd = [
        str(BIN / "jupyter"),
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
        "--LabApp.news_url=",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = tmp / "lab.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()}")
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab not up in {STARTUP_S} s:\n{log.read_text()}")
                time.sleep(0.2)
        yield f"{url}/lab/tree/explore.ipynb?token={token}"
    finally:
        stop(proc)


@pytest.fixture
def page(jupyterlab):
    from playwright.sync_api import sync_playwright

    exe = chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": VIEW_HEIGHT})
            local = jupyterlab.split("/lab/")[0]
            # nothing but the local server: the page must need nothing from the internet
            context.route(
                "**/*",
                lambda route: (
                    route.continue_() if route.request.url.startswith(local) else route.abort()
                ),
            )
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            try:
                yield page
            except BaseException:
                raise
            finally:
                if not page.is_closed():  # what the page showed last, for a failure
                    SHOTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=SHOTS / "last-page.png", full_page=True)
        finally:
            browser.close()


def rows_of(comparison, name: str) -> list[list[str]]:
    return explorer.table_rows(explorer.shown(comparison)[name])


def table(page, name: str) -> list[list[str]]:
    return page.locator(f".pm-explorer table.pm-table-{name}").evaluate(READ_TABLE)


def wait_for_table(page, name: str, rows: list[list[str]]) -> None:
    """Until the page's table is ``rows`` (the kernel computes while the page waits)."""
    try:
        page.wait_for_function(
            f"""rows => {{
                const t = document.querySelector('.pm-explorer table.pm-table-{name}');
                return t && JSON.stringify(({READ_TABLE})(t)) === JSON.stringify(rows);
            }}""",
            arg=rows,
            timeout=WAIT_MS,
        )
    except Exception:  # the difference says more than a timeout
        assert table(page, name) == rows
        raise


def boxes(page) -> list[str]:
    return page.locator(".pm-explorer .widget-text input").evaluate_all(
        "els => els.map(e => e.value)"
    )


def type_selection(page, start: str, end: str) -> None:
    inputs = page.locator(".pm-explorer .widget-text input").all()[:2]
    for box, value in zip(inputs, (start, end), strict=True):
        box.fill(value)
        box.press("Enter")


def drag(page, x: explorer.Explorer, start: datetime, end: datetime) -> None:
    """Drag across the chart from ``start`` to ``end``, at the place where the explorer's own
    drawing (same code, same size) puts those times."""
    fig = x.figure()
    fig.draw_without_rendering()  # the constrained layout worked out, as on the page
    ax = fig.axes[0]
    height = fig.bbox.height
    canvas = page.locator(".pm-explorer .pm-chart canvas").last
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    scale = box["width"] / fig.bbox.width

    def at(t: datetime) -> tuple[float, float]:
        px, py = ax.transData.transform((mdates.date2num(t), 1.0))
        return box["x"] + px * scale, box["y"] + (height - py) * scale

    page.mouse.move(*at(start))
    page.mouse.down()
    page.mouse.move(*at(end), steps=8)
    # a hand stops before it lets go: the canvas sends moves at most every 33 ms, and the
    # brush ends where the last one it heard was
    page.wait_for_timeout(100)
    page.mouse.move(*at(end))
    page.mouse.up()


def shot(page, name: str) -> Path:
    """The explorer from its top to the bottom of the window (JupyterLab's notebook panel
    scrolls; what lies outside it is not drawn there)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.wait_for_timeout(300)  # the chart's new picture, sent before the tables, decoded
    explorer_box = page.locator(".pm-explorer")
    explorer_box.evaluate("e => e.scrollIntoView({block: 'start'})")
    box = explorer_box.bounding_box()
    bottom = page.locator(".jp-StatusBar, #jp-bottom-panel").first.bounding_box()["y"]
    top = max(box["y"], 0)
    height = min(box["y"] + box["height"], bottom) - top
    page.screenshot(
        path=path, clip={"x": box["x"], "y": top, "width": box["width"], "height": height}
    )
    return path


def test_the_explorer_follows_the_selection_in_jupyterlab(page, jupyterlab, expected):
    page.goto(jupyterlab)
    page.locator(".jp-Notebook").wait_for()
    # JupyterLab may ask which kernel to start, the notebook's own preselected: accept it
    ask = page.locator(".jp-Dialog .jp-mod-accept")
    try:
        ask.wait_for(timeout=5_000)
        ask.click()
    except PlaywrightTimeout:
        pass
    page.keyboard.press("Control+b")  # the file browser closed: the notebook's full width
    page.locator(".jp-MenuBar-item, .lm-MenuBar-item", has_text="Run").first.click()
    page.get_by_text("Run All Cells", exact=True).click()
    page.locator(".pm-explorer table.pm-table-signals").wait_for()
    # every cell run (the chart's canvas hears from the kernel once the cells queued before
    # its messages are done), and the chart drawn at its size
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.jp-InputArea-prompt')]"
        ".some(p => p.textContent.includes('*'))"
    )
    page.wait_for_function(
        "() => { const c = document.querySelector('.pm-explorer .pm-chart canvas');"
        " return c && c.width > 0; }"
    )
    page.locator(".pm-explorer").scroll_into_view_if_needed()

    # at first: the window detected from the data against the rest
    detected = expected.selection
    assert boxes(page)[:2] == [explorer.write_time(t) for t in detected]
    first = compare_stretches(expected.con, expected.params, detected, REST, key=KEY)
    for name in ("signals", "dimensions", "fingerprints", "error-codes"):
        wait_for_table(page, name, rows_of(first, name.replace("-", " ")))
    shot(page, "incident")

    # a drag across a calm stretch before the incident
    before = boxes(page)[:2]
    drag(page, expected, datetime(2024, 1, 19, 7, 0), datetime(2024, 1, 19, 8, 0))
    page.wait_for_function(
        """before => {
            const v = [...document.querySelectorAll('.pm-explorer .widget-text input')]
                .slice(0, 2).map(e => e.value);
            return v[0] !== before[0] && v[1] !== before[1];
        }""",
        arg=before,
    )
    start, end = (explorer.parse_time(v) for v in boxes(page)[:2])
    assert abs((start - datetime(2024, 1, 19, 7, 0)).total_seconds()) <= 120, start
    assert abs((end - datetime(2024, 1, 19, 8, 0)).total_seconds()) <= 120, end
    calm = compare_stretches(expected.con, expected.params, (start, end), REST, key=KEY)
    wait_for_table(page, "signals", rows_of(calm, "signals"))
    wait_for_table(page, "fingerprints", rows_of(calm, "fingerprints"))
    assert calm.dimensions.empty  # no system failure in a calm hour: nothing concentrates
    # the tables are redrawn one after another: wait for this one too, then read it
    page.wait_for_function(
        "() => { const t = document.querySelector('.pm-explorer .pm-table-dimensions');"
        " return t && t.innerText.startsWith('no '); }",
        timeout=WAIT_MS,
    )
    shot(page, "baseline-stretch")

    # typed back into the incident
    type_selection(page, "2024-01-19 11:00", "2024-01-19 12:00")
    stretch = (datetime(2024, 1, 19, 11), datetime(2024, 1, 19, 12))
    back = compare_stretches(expected.con, expected.params, stretch, REST, key=KEY)
    for name in ("signals", "dimensions", "fingerprints", "users"):
        wait_for_table(page, name, rows_of(back, name))
    # the top fingerprint is picked: the requests that issued it in the selection
    fp = back.fingerprints["fingerprint"].iloc[0]
    requests = lab.requests_of_fingerprint(
        expected.con, fp, "2024-01-19T11:00:00Z", "2024-01-19T12:00:00Z", key=KEY, n=8
    )
    assert len(requests) > 0
    wait_for_table(page, "requests", explorer.table_rows(requests))

    # why is the worst minute bad: one click
    worst = expected.worst["bucket"].iloc[0]
    page.locator(".pm-explorer .pm-why").first.click()
    minute = (worst.to_pydatetime(), (worst + expected.width).to_pydatetime())
    why = compare_stretches(expected.con, expected.params, minute, REST, key=KEY)
    wait_for_table(page, "signals", rows_of(why, "signals"))
    assert boxes(page)[:2] == [explorer.write_time(t) for t in minute]
