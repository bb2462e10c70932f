"""The project in the real clients: a Jupyter server and its kernel, headless Chromium on
the HTML report, the kernel the notebooks name, and the pre-commit hooks.

Nothing is mocked: the server is ``.venv/bin/jupyter server`` on loopback with a random token,
the notebook comes from its contents API and runs in a kernel started through its REST API,
spoken to over the kernel's websocket; the HTML is rendered by Chromium and inspected through
the DevTools protocol. Every process started here is stopped in a ``finally``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
import websocket
import yaml

from analysis import lab, sample
from analysis.report import draft
from tools import nbcheck

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCALE = 0.03
KEY = "test-key-jupyter"
STARTUP_S = 45
CELL_S = 60
#: what the browser may load: the report is one file with its images inlined; the CDN scripts
#: that nbconvert's template names must never leave this machine
BLOCKED_URLS = ["http://*", "https://*", "ws://*", "wss://*", "ftp://*"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, *, grace_s: float = 10) -> None:
    """SIGTERM the process group (a server and the kernels it started), then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def lab_sample(tmp_path_factory) -> dict[str, Path]:
    return sample.generate(tmp_path_factory.mktemp("lab-sample"), scale=SCALE, seed=7)


# --- the Jupyter server --------------------------------------------------------------------


@dataclass
class Server:
    url: str
    token: str
    log: Path
    kernels: list[str] = field(default_factory=list)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read()
        return json.loads(text) if text else None


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory) -> Iterator[Server]:
    """``jupyter server`` on 127.0.0.1, a free port and a random token; stopped at the end."""
    tmp = tmp_path_factory.mktemp("jupyter")
    port, token = free_port(), secrets.token_hex(24)
    env = {
        **os.environ,
        # the server's files (connection files, config) stay in this test's folder
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "POSTMORTEM_KEY": KEY,
    }
    cmd = [
        str(BIN / "jupyter"),
        "server",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={ROOT}",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = tmp / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", token, log)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                server.request("GET", "/api/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter server not up in {STARTUP_S} s:\n{log.read_text()}")
                time.sleep(0.2)
        yield server
    finally:
        for kid in server.kernels:
            try:
                server.request("DELETE", f"/api/kernels/{kid}")
            except Exception:  # the server stops below either way, and takes its kernels
                pass
        stop(proc)


class Kernel:
    """A kernel of the server, spoken to over its websocket (Jupyter messaging protocol)."""

    def __init__(self, server: Server, kernel_id: str) -> None:
        self.session = uuid.uuid4().hex
        ws_url = server.url.replace("http://", "ws://", 1)
        self.ws = websocket.create_connection(
            f"{ws_url}/api/kernels/{kernel_id}/channels?session_id={self.session}",
            header=[f"Authorization: token {server.token}"],
            timeout=CELL_S,
        )

    def execute(self, code: str, *, timeout: float = CELL_S) -> dict[str, Any]:
        """Run code; the reply, the stdout and the results, once the kernel is idle again."""
        msg_id = uuid.uuid4().hex
        self.ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "test",
                        "session": self.session,
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": True,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        reply, idle, stdout, results, errors = None, False, [], [], []
        deadline = time.monotonic() + timeout
        while reply is None or not idle:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer in {timeout} s to:\n{code[:300]}")
            self.ws.settimeout(left)
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "execute_reply":
                reply = content
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
            elif kind == "stream" and content["name"] == "stdout":
                stdout.append(content["text"])
            elif kind == "execute_result":
                results.append(content["data"])
            elif kind == "error":
                errors.append("\n".join(content["traceback"]))
        if reply["status"] != "ok":
            raise AssertionError(f"cell failed:\n{code[:500]}\n" + "\n".join(errors))
        return {"reply": reply, "stdout": "".join(stdout), "results": results}

    def close(self) -> None:
        self.ws.close()


def test_the_server_lists_the_notebooks_and_offers_the_project_kernel(jupyter):
    listing = jupyter.request("GET", "/api/contents/notebooks")
    names = {item["name"] for item in listing["content"]}
    assert {"explore.ipynb", "incident_report.ipynb"} <= names
    specs = jupyter.request("GET", "/api/kernelspecs")["kernelspecs"]
    assert lab.KERNEL_NAME in specs, f"run `make venv`: no kernel {lab.KERNEL_NAME} in {specs}"
    assert specs[lab.KERNEL_NAME]["spec"]["display_name"] == lab.KERNEL_DISPLAY_NAME


def test_the_exploration_notebook_runs_in_a_kernel_of_the_server(jupyter, lab_sample, tmp_path):
    model = jupyter.request("GET", "/api/contents/notebooks/explore.ipynb?content=1")
    nb = nbformat.from_dict(model["content"])
    # JupyterLab starts the kernel the notebook names, in the notebook's folder
    started = jupyter.request(
        "POST", "/api/kernels", {"name": nb.metadata.kernelspec.name, "path": "notebooks"}
    )
    jupyter.kernels.append(started["id"])
    assert started["name"] == lab.KERNEL_NAME
    kernel = Kernel(jupyter, started["id"])
    try:
        where = kernel.execute("import os, sys\nprint(sys.prefix, os.getcwd(), sep='\\n')")
        assert where["stdout"].split("\n")[:2] == [sys.prefix, str(ROOT / "notebooks")]

        injected = {  # as papermill would, after the parameters cell
            "auth_logs": str(lab_sample["auth"]),
            "query_logs": str(lab_sample["queries"]),
            "timeline": str(lab_sample["timeline"]),
            "database": str(tmp_path / "lab.duckdb"),
            "report_dir": str(tmp_path / "report"),
        }
        counts: dict[int, int] = {}
        sql_cells: list[int] = []
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if cell.source.startswith("%%sql"):
                sql_cells.append(i)
            if i == len(nb.cells) - 1:  # the last cell closes the connection: check first
                break
            counts[i] = kernel.execute(cell.source)["reply"]["execution_count"]
            if "parameters" in cell.metadata.get("tags", []):
                kernel.execute("\n".join(f"{k} = {v!r}" for k, v in injected.items()))
        assert len(sql_cells) == 3, "the worst minutes, a user's attempts, one request's queries"
        worst_sql, user_sql, request_sql = (counts[i] for i in sql_cells)
        helper_queries = next(
            counts[i] for i, c in enumerate(nb.cells) if "lab.queries_of_request" in c.source
        )
        check = f"""
import json
w, u, r = Out[{worst_sql}], Out[{user_sql}], Out[{request_sql}]
print(json.dumps({{
    "types": [type(x).__name__ for x in (w, u, r)],
    "rows": [len(w), len(u), len(r)],
    "worst_agrees": [(str(b), int(n)) for b, n in w[["bucket", "system_failures"]].head(5).values]
        == [(str(b), int(n)) for b, n in worst[["bucket", "system_failures"]].values],
    "users": sorted(set(u["user"])),
    "who": con.execute("select getvariable('who')").fetchone()[0],
    "helper_rows": len(Out[{helper_queries}]),
    "same_fingerprints": list(r["fingerprint"]) == list(Out[{helper_queries}]["fingerprint"]),
}}))
"""
        seen = json.loads(kernel.execute(check)["stdout"])
        assert seen["types"] == ["DataFrame"] * 3
        assert all(n > 0 for n in seen["rows"]), seen["rows"]
        assert seen["worst_agrees"], "the SQL worst minutes differ from lab.worst_buckets"
        assert seen["users"] == [seen["who"]] and seen["who"].startswith("user-")
        assert seen["rows"][2] == seen["helper_rows"] and seen["same_fingerprints"]
        kernel.execute(nb.cells[-1].source)  # closes the database, as the notebook ends
    finally:
        kernel.close()
        with contextlib.suppress(Exception):  # else the fixture's teardown stops it
            jupyter.request("DELETE", f"/api/kernels/{started['id']}")
            jupyter.kernels.remove(started["id"])
    assert jupyter.request("GET", "/api/kernels") == []


# --- the HTML report in headless Chromium --------------------------------------------------


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("POSTMORTEM_REQUIRE_SHARED"):
        pytest.fail("chromium is missing, and CI requires it (make test installs it as root)")
    pytest.skip("chromium is not installed (make test installs it when run as root)")


class DevTools:
    """The Chrome DevTools protocol over websocket-client, one page."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg["result"]
            self.events.append(msg)

    def wait_for(self, event: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {event} in {timeout} s")
            self.ws.settimeout(left)
            self.events.append(json.loads(self.ws.recv()))
        self.ws.settimeout(30)

    def open(self, path: Path) -> None:
        self.events.clear()
        self.call("Page.navigate", url=path.as_uri())
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"]["value"]


@pytest.fixture
def browser(tmp_path) -> Iterator[DevTools]:
    exe = chromium()
    profile = tmp_path / "chromium-profile"
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        f"--user-data-dir={profile}",
        # no name resolves: nothing but the local file can be loaded, whatever the page asks
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "--window-size=1280,1000",
        "about:blank",
    ]
    log = tmp_path / "chromium.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    tools = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + STARTUP_S
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            pages = [t for t in json.load(resp) if t["type"] == "page"]
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        tools.call("Network.enable")
        tools.call("Network.setBlockedURLs", urls=BLOCKED_URLS)
        tools.call("Page.enable")
        yield tools
    finally:
        if tools is not None:
            try:
                tools.call("Browser.close")
            except Exception:  # the process group is stopped below either way
                pass
            tools.ws.close()
        stop(proc, grace_s=5)


IMAGES = """
(async () => {
  const images = Array.from(document.images);
  await Promise.all(images.map(i => i.decode().catch(() => null)));
  return images.map(i => ({alt: i.alt, complete: i.complete,
                           width: i.naturalWidth, height: i.naturalHeight}));
})()
"""


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def test_the_html_report_renders_every_chart_in_chromium(browser, lab_sample, tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run(
        [str(BIN / "postmortem"), "-q", "report", "--explore"]
        + ["--auth", str(lab_sample["auth"]), "--queries", str(lab_sample["queries"])]
        + ["--timeline", str(lab_sample["timeline"])]
        + ["--database", str(tmp_path / "report.duckdb"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "POSTMORTEM_KEY": KEY},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    browser.open(out / "incident_report.html")
    images = browser.evaluate(IMAGES)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    # every chart, with its finding as alt text, decoded at the size of the PNG written
    assert sorted(i["alt"] for i in images) == sorted(
        draft.chart_titles(summary)[c] for c in draft.charts_for(summary)
    )
    assert all(i["complete"] and i["width"] > 0 and i["height"] > 0 for i in images), images
    assert sorted((i["width"], i["height"]) for i in images) == sorted(
        png_size(out / "figures" / f"{c}.png") for c in draft.charts_for(summary)
    )
    headline = browser.evaluate("document.body.innerText")
    assert draft.headline(summary).split(";")[0] in headline
    height = browser.evaluate("document.documentElement.scrollHeight")
    shot = browser.call(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": 1280, "height": min(height, 6000), "scale": 0.75},
    )
    screenshot = tmp_path / "incident_report.png"
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    width, tall = png_size(screenshot)
    assert width == 960 and abs(tall - min(height, 6000) * 0.75) <= 1, (width, tall)

    # the exploration notebook's HTML: its chart decoded, its SQL results shown as tables
    browser.open(out / "explore.html")
    images = browser.evaluate(IMAGES)
    assert images and all(i["complete"] and i["width"] > 0 for i in images), images
    assert browser.evaluate("document.querySelectorAll('table.dataframe').length") >= 6


# --- the kernel the notebooks name, and the pre-commit hooks -------------------------------


def test_every_notebook_names_the_registered_project_kernel():
    listed = subprocess.run(
        [str(BIN / "jupyter"), "kernelspec", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    specs = json.loads(listed.stdout)["kernelspecs"]
    assert lab.KERNEL_NAME in specs, f"run `make venv` to register the {lab.KERNEL_NAME} kernel"
    argv = specs[lab.KERNEL_NAME]["spec"]["argv"]
    assert Path(argv[0]).parent.resolve() == BIN.resolve(), argv  # the .venv's python
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        spec = nbformat.read(path, as_version=4).metadata.kernelspec
        assert (spec.name, spec.display_name, spec.language) == (
            lab.KERNEL_NAME,
            lab.KERNEL_DISPLAY_NAME,
            "python",
        ), path


def precommit_hooks() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    return {h["id"]: {**h, "repo": r["repo"]} for r in config["repos"] for h in r["hooks"]}


def test_precommit_hooks_are_local_and_valid():
    hooks = precommit_hooks()
    assert {"ruff-check", "ruff-format", "nbstripout", "check-added-large-files"} <= set(hooks)
    for hook in hooks.values():  # no hook repository to clone from the network
        assert (hook["repo"], hook["language"]) == ("local", "system"), hook
        assert (ROOT / shlex.split(hook["entry"])[0]).exists(), hook["entry"]
    subprocess.run(
        [str(BIN / "pre-commit"), "validate-config", ".pre-commit-config.yaml"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_nbstripout_hook_gives_back_the_committed_notebook(tmp_path):
    """A notebook run and saved in JupyterLab, through the hook: outputs, counts, timings
    and kernel details go; cell ids and the `parameters` tag stay, byte for byte."""
    entry = shlex.split(precommit_hooks()["nbstripout"]["entry"])
    for committed in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(committed, as_version=4)
        nb.metadata.language_info.update(
            version="3.11.7",
            mimetype="text/x-python",
            file_extension=".py",
            pygments_lexer="ipython3",
            nbconvert_exporter="python",
            codemirror_mode={"name": "ipython", "version": 3},
        )
        for n, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
            cell.execution_count = n + 1
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x\n")]
            cell.metadata["execution"] = {"iopub.status.idle": "2024-01-19T10:30:00.000Z"}
        run = tmp_path / committed.name
        nbformat.write(nb, run)
        assert nbcheck.problems(run)
        subprocess.run([str(ROOT / entry[0]), *entry[1:], str(run)], check=True, timeout=60)
        assert nbcheck.problems(run) == []
        assert run.read_text(encoding="utf-8") == committed.read_text(encoding="utf-8")
