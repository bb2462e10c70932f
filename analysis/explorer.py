"""The explorer of ``notebooks/explore.ipynb``: point at any stretch of the incident and see
what changed against the baseline.

:class:`Explorer` holds a selection and a baseline (a stretch, or the rest) and the
:func:`~analysis.figures.compare_stretches` of the two. In JupyterLab it is a widget
(ipywidgets, with the chart on ipympl's canvas): drag across the chart or type the times to
select a stretch, set the baseline the same way or leave it as the rest, pick a dimension, pick
a fingerprint to list the requests that issued it, or ask why one of the worst minutes is bad
in one click. Every table follows the selection.

Where no widget can be drawn (papermill, the report's HTML) the same object shows itself as
static tables and a chart of the comparison it holds: its ``text/html`` beside the widget's
view. It writes no file.
"""

from __future__ import annotations

import html
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import duckdb
import ipywidgets as widgets
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.widgets import SpanSelector

from analysis import lab, privacy, times
from analysis.figures import (
    REST,
    Comparison,
    Params,
    compare_stretches,
    detect,
    scored_values,
    series,
    span,
    timeline_events,
)
from analysis.report import charts

#: how a time is written in the explorer's boxes (UTC)
TIME_FORMAT = "%Y-%m-%d %H:%M"
#: rows of each table shown
ROWS = 12
#: the worst minutes offered for "why is this minute bad?"
WORST = 8
ALL_DIMENSIONS = "(every dimension)"
#: the tables compact, one line a row; a long fingerprint is cut on screen (its whole text
#: stays in the page)
STYLE = """<style>
.pm-explorer table.pm-table, .pm-explorer-static table.pm-table {
  font-size: 11px; border-collapse: collapse; margin: 2px 0 8px 0; }
.pm-table th, .pm-table td { white-space: nowrap; padding: 1px 6px; text-align: right; }
.pm-table th:first-child, .pm-table td:first-child { text-align: left; }
.pm-table-fingerprints td:first-child, .pm-table-requests td:nth-child(2) {
  max-width: 340px; overflow: hidden; text-overflow: ellipsis; }
.pm-explorer h4 { margin: 8px 0 2px 0; }
.pm-explorer .widget-html-content { overflow-x: auto; }
</style>"""
#: the columns of a fingerprint shown: its rates, counts, mean and p95 in each stretch
FINGERPRINT_COLUMNS = [
    "fingerprint",
    "baseline_per_auth",
    "selection_per_auth",
    "rise_per_auth",
    "selection_count",
    "baseline_count",
    "selection_mean_ms",
    "baseline_mean_ms",
    "selection_p95_ms",
    "baseline_p95_ms",
]


def parse_time(text: str) -> datetime:
    """A time typed in a box: ``2024-01-19 10:26`` (UTC) or ISO-8601 with a zone."""
    try:
        ts = pd.Timestamp(str(text).strip())
    except ValueError:
        ts = pd.NaT
    if pd.isna(ts):
        raise ValueError(f"{text!r} is not a time such as 2024-01-19 10:26 (UTC)")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def write_time(t: datetime) -> str:
    """A time as the boxes show it."""
    return pd.Timestamp(t).strftime(TIME_FORMAT)


def _cell(value: Any) -> str:
    if value is None or (not isinstance(value, list | tuple) and pd.isna(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    if isinstance(value, float):
        # four significant digits, and no exponent for a count or milliseconds in thousands
        return f"{value:,.0f}" if 1e4 <= abs(value) < 1e15 else f"{value:,.4g}"
    if isinstance(value, pd.Timestamp | datetime):
        return times.iso(value) or ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def table_rows(df: pd.DataFrame, *, rows: int = ROWS) -> list[list[str]]:
    """The cells of a table as the explorer writes them (a header row first): what a test
    compares with the page."""
    head = df.head(rows)
    return [list(map(str, head.columns))] + [[_cell(v) for v in r] for r in head.itertuples(False)]


def table_html(df: pd.DataFrame, *, name: str, rows: int = ROWS, empty: str = "") -> str:
    """A table as HTML (class ``dataframe``, as pandas writes one), or a line saying it is
    empty (``empty``, by default that there is none of ``name`` in either stretch)."""
    if df.empty:
        text = empty or f"no {name.replace('-', ' ')} in either stretch"
        return f'<p class="pm-empty pm-table-{name}">{html.escape(text)}</p>'
    cells = table_rows(df, rows=rows)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells[1:]
    )
    return (
        f'<table class="dataframe pm-table pm-table-{name}">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def shown(comparison: Comparison) -> dict[str, pd.DataFrame]:
    """The comparison's tables as they are shown: dimension values, fingerprints and pairs
    with e-mail and IP addresses masked, as the report writes them."""
    tables = dict(comparison.tables())
    dims = tables["dimensions"]
    tables["dimensions"] = dims.assign(value=dims["value"].map(privacy.mask))
    fps = tables["fingerprints"][FINGERPRINT_COLUMNS]
    tables["fingerprints"] = fps.assign(fingerprint=fps["fingerprint"].map(privacy.mask))
    pairs = tables["dimension pairs"]
    tables["dimension pairs"] = pairs.assign(
        values=pairs["values"].map(lambda vs: [privacy.mask(v) for v in vs])
    )
    return tables


class Explorer:
    """A selection and a baseline over one incident's views, and what changed between them.

    Parameters
    ----------
    con
        A connection after :func:`analysis.figures.scope` (the notebook's).
    params
        The analysis parameters; the declared window is shaded, the bucket may grow with the
        data as the report's does.
    key, redact
        Users come out as pseudonyms keyed with ``key`` unless ``redact`` is False.
    selection
        The first selection; by default the window detected from the data, else the declared
        one. The first baseline is the rest.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        params: Params,
        *,
        key: str,
        redact: bool = True,
        selection: tuple[datetime, datetime] | None = None,
    ) -> None:
        self.con, self.key, self.redact = con, key, redact
        self.params = replace(params, bucket=span.find(con, params).bucket)
        self.series = series(con, self.params)
        width = timedelta(seconds=times.bucket_seconds(self.params.bucket))
        self.detected = detect.detect_window(self.series, bucket=width)
        self.width = width
        self.events = timeline_events(con)
        self.worst = lab.worst_buckets(
            con, n=WORST, bucket=self.params.bucket, user_error_codes=self.params.user_error_codes
        )
        if selection is None:
            found = self.detected
            selection = (found.start, found.end) if found else (params.start, params.end)
        self.selection: tuple[datetime, datetime] = selection
        self.baseline: tuple[datetime, datetime] | str = REST
        self.comparison = self.compare()
        self._ui: ExplorerView | None = None

    # --- the comparison ---

    def compare(self) -> Comparison:
        """The comparison of the current selection and baseline."""
        return compare_stretches(
            self.con,
            self.params,
            self.selection,
            self.baseline,
            key=self.key,
            redact=self.redact,
        )

    def select(
        self,
        start: datetime | str,
        end: datetime | str,
        *,
        baseline: tuple[datetime | str, datetime | str] | str | None = None,
    ) -> Comparison:
        """Select ``[start, end)`` (and a baseline, when given) and compare again."""
        self.selection = (_at(start), _at(end))
        if baseline is not None:
            self.baseline = REST if baseline == REST else (_at(baseline[0]), _at(baseline[1]))
        self.comparison = self.compare()
        if self._ui is not None:
            self._ui.refresh()
        return self.comparison

    def why(self, minute: datetime | str) -> Comparison:
        """Why is this minute bad: that bucket against the rest."""
        start = _at(minute)
        return self.select(start, start + self.width, baseline=REST)

    def dimension_values(self, dimension: str) -> pd.DataFrame:
        """Every value of one dimension in the selection, scored as the report scores them."""
        window = replace(self.params, start=self.selection[0], end=self.selection[1])
        values = scored_values(self.con, window)
        return values[values["dimension"] == dimension].reset_index(drop=True)

    def requests(self, fingerprint: str, *, n: int = 8) -> pd.DataFrame:
        """The attempts of the selection whose request issued ``fingerprint``."""
        lo, hi = (times.iso(t) for t in self.selection)
        return lab.requests_of_fingerprint(
            self.con, fingerprint, lo, hi, key=self.key, redact=self.redact, n=n
        )

    # --- what is shown ---

    def title(self) -> str:
        """The chart's title: the two stretches and the system-failure rate of each."""
        sig = self.comparison.signals.set_index("signal").loc["system-failure rate"]
        sel, base = (
            "–" if pd.isna(v) else f"{100 * v:.2f}%" for v in sig[["selection", "baseline"]]
        )
        where = self.comparison.describe_selection()
        return f"System-failure rate {sel} in the selection ({where}), {base} in the baseline"

    def figure(self, fig: Figure | None = None) -> Figure:
        """The chart of the data with the selection and the baseline shaded."""
        fig = fig if fig is not None else Figure(figsize=(11, 3.2), layout="constrained")
        fig.clear()
        charts.plot_selection(
            self.series,
            selection=self.selection,
            baseline=None if self.baseline == REST else self.baseline,
            declared=(self.params.start, self.params.end),
            events=self.events,
            title=self.title(),
            ax=fig.add_subplot(),
        )
        return fig

    def static_html(self) -> str:
        """The comparison as a chart and tables, for a reader without widgets."""
        png = charts.png_bytes(self.figure())
        parts = [STYLE, charts.html_image(png, self.title())]
        parts.append(f"<p>{html.escape(self.comparison.describe())}</p>")
        parts.append(f"<h4>Worst {self.params.bucket} buckets</h4>")
        parts.append(table_html(self.worst, name="worst-minutes"))
        for name, df in shown(self.comparison).items():
            parts.append(f"<h4>{html.escape(name.capitalize())}</h4>")
            parts.append(table_html(df, name=name.replace(" ", "-")))
        return '<div class="pm-explorer-static">' + "".join(parts) + "</div>"

    def widget(self) -> widgets.Widget:
        """The interactive explorer (made once)."""
        if self._ui is None:
            self._ui = ExplorerView(self)
        return self._ui.root

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # the widget where widgets are drawn, the static comparison where they are not
        bundle = self.widget()._repr_mimebundle_(**kwargs)
        bundle["text/html"] = self.static_html()
        return bundle


def _at(value: datetime | str | pd.Timestamp) -> datetime:
    if isinstance(value, str):
        return parse_time(value)
    return pd.Timestamp(value).to_pydatetime()


class ExplorerView:
    """The widgets of one :class:`Explorer`: the chart with its brush, the boxes that mirror
    it, the pickers and the tables."""

    def __init__(self, explorer: Explorer) -> None:
        self.x = explorer
        self._quiet = False
        self.canvas, self.ax = self._chart()
        layout = widgets.Layout(width="210px")
        self.sel_from = widgets.Text(description="from", layout=layout, continuous_update=False)
        self.sel_to = widgets.Text(description="to", layout=layout, continuous_update=False)
        self.base_kind = widgets.ToggleButtons(options=["the rest", "a stretch"])
        self.base_from = widgets.Text(description="from", layout=layout, continuous_update=False)
        self.base_to = widgets.Text(description="to", layout=layout, continuous_update=False)
        self.brush = widgets.ToggleButtons(options=["selection", "baseline"])
        self.status = widgets.HTML()
        self.tables = {name: widgets.HTML() for name in shown(explorer.comparison)}
        self.dimension = widgets.Dropdown(description="dimension")
        self.fingerprint = widgets.Dropdown(description="fingerprint", layout={"width": "95%"})
        self.requests = widgets.HTML()
        self.worst = self._worst_minutes()
        for box in (self.sel_from, self.sel_to, self.base_from, self.base_to):
            box.observe(self._typed, names="value")
        self.base_kind.observe(self._typed, names="value")
        self.dimension.observe(lambda _: self._show_dimension(), names="value")
        self.fingerprint.observe(lambda _: self._show_requests(), names="value")
        self.root = self._layout()
        self.refresh()

    # --- building ---

    def _chart(self):
        from ipympl.backend_nbagg import Canvas, FigureManager

        fig = Figure(figsize=(11, 3.2), layout="constrained")
        canvas = Canvas(fig)
        FigureManager(canvas, 0)
        canvas.header_visible = False
        canvas.footer_visible = False
        canvas.toolbar_visible = False
        canvas.resizable = False
        canvas.add_class("pm-chart")
        self.x.figure(fig)
        ax = fig.axes[0]
        self.selector = self._selector(ax)
        return canvas, ax

    def _selector(self, ax) -> SpanSelector:
        """The brush: a drag across the chart selects (or sets the baseline)."""
        return SpanSelector(
            ax,
            self._brushed,
            "horizontal",
            useblit=False,
            props={"facecolor": charts.SELECTION, "alpha": 0.2},
            minspan=self.x.width / timedelta(days=1),
        )

    def _worst_minutes(self) -> widgets.Widget:
        rows = [widgets.HTML("<b>worst buckets</b> (system failures / attempts)")]
        for r in self.x.worst.itertuples():
            button = widgets.Button(
                description=f"why {pd.Timestamp(r.bucket):%H:%M}?",
                tooltip=f"compare {write_time(r.bucket)} with the rest",
                layout={"width": "96px"},
            )
            button.add_class("pm-why")
            button.on_click(lambda _, t=r.bucket: self.x.why(t))
            label = widgets.HTML(f"{r.system_failures:,} / {r.attempts:,}")
            rows.append(widgets.HBox([button, label]))
        return widgets.VBox(rows, layout={"min_width": "170px"})

    def _layout(self) -> widgets.Widget:
        t = self.tables

        def titled(text: str, *children: widgets.Widget) -> widgets.VBox:
            return widgets.VBox([widgets.HTML(f"<h4>{text}</h4>"), *children])

        controls = widgets.VBox(
            [
                widgets.HBox([widgets.HTML("<b>selection</b>"), self.sel_from, self.sel_to]),
                widgets.HBox(
                    [widgets.HTML("<b>baseline</b>"), self.base_kind, self.base_from, self.base_to]
                ),
                widgets.HBox([widgets.HTML("<b>dragging sets the</b>"), self.brush]),
            ]
        )
        top = widgets.HBox([self.worst, titled("What changed", t["signals"])])
        middle = widgets.HBox(
            [
                titled("Where the failures concentrate", self.dimension, t["dimensions"]),
                titled("Error codes", t["error codes"]),
            ]
        )
        more = widgets.Tab(
            [t["users"], t["dimension pairs"], t["server events"], t["bypass"]],
            titles=["users", "dimension pairs", "server events", "bypass"],
        )
        fps = titled(
            "Query fingerprints per auth attempt",
            t["fingerprints"],
            self.fingerprint,
            self.requests,
        )
        root = widgets.VBox(
            [widgets.HTML(STYLE), self.canvas, controls, self.status, top, middle, fps, more]
        )
        root.add_class("pm-explorer")
        return root

    # --- following the selection ---

    def _brushed(self, lo: float, hi: float) -> None:
        start, end = (self._minute(mdates.num2date(v)) for v in (lo, hi))
        if end <= start:
            end = start + self.x.width
        if self.brush.value == "baseline":
            self.x.select(*self.x.selection, baseline=(start, end))
        else:
            self.x.select(start, end)

    def _minute(self, t: datetime) -> datetime:
        t = pd.Timestamp(t).tz_convert("UTC").tz_localize(None)
        return t.round(self.x.width).to_pydatetime()

    def _typed(self, _change: Any) -> None:
        if self._quiet:
            return
        try:
            selection = (parse_time(self.sel_from.value), parse_time(self.sel_to.value))
            baseline: Any = REST
            if self.base_kind.value == "a stretch":
                baseline = (parse_time(self.base_from.value), parse_time(self.base_to.value))
            self.x.select(*selection, baseline=baseline)
        except ValueError as exc:
            self.status.value = f'<p class="pm-status pm-error">{html.escape(str(exc))}</p>'

    def refresh(self) -> None:
        """Show the explorer's current comparison: boxes, chart, tables and pickers."""
        x, c = self.x, self.x.comparison
        self._quiet = True
        try:
            self.sel_from.value, self.sel_to.value = (write_time(t) for t in x.selection)
            rest = x.baseline == REST
            self.base_kind.value = "the rest" if rest else "a stretch"
            base = x.baseline if not rest else self._suggested_baseline()
            self.base_from.value, self.base_to.value = (write_time(t) for t in base)
            self.base_from.disabled = self.base_to.disabled = rest
            self._pickers(c)
        finally:
            self._quiet = False
        self._redraw()
        self.status.value = (
            f'<p class="pm-status">{html.escape(c.describe())}: '
            f"{c.minutes['selection']:,.0f} against {c.minutes['baseline']:,.0f} minutes of data"
            "</p>"
        )
        for name, df in shown(c).items():
            if name != "dimensions":
                self.tables[name].value = table_html(df, name=name.replace(" ", "-"))
        self._show_dimension()
        self._show_requests()

    def _suggested_baseline(self) -> tuple[datetime, datetime]:
        """What the baseline boxes offer while the baseline is the rest: a stretch as long
        as the selection (an hour at least), ending the guard minutes before it."""
        lo, hi = self.x.selection
        end = lo - timedelta(minutes=self.x.params.guard_minutes)
        return end - max(hi - lo, timedelta(hours=1)), end

    def _pickers(self, c: Comparison) -> None:
        dims = list(dict.fromkeys(c.dimensions["dimension"]))
        keep = self.dimension.value if self.dimension.value in dims else ALL_DIMENSIONS
        self.dimension.options = [ALL_DIMENSIONS, *dims]
        self.dimension.value = keep
        fps = [(privacy.mask(f)[:90], f) for f in c.fingerprints["fingerprint"]]
        keep_fp = self.fingerprint.value if self.fingerprint.value in dict(fps).values() else None
        self.fingerprint.options = fps
        self.fingerprint.value = keep_fp if keep_fp is not None else (fps[0][1] if fps else None)

    def _redraw(self) -> None:
        # drawn anew (a few hundred buckets): the shading, the title and the brush follow
        self.x.figure(self.canvas.figure)
        self.ax = self.canvas.figure.axes[0]
        self.selector = self._selector(self.ax)
        # once the page has the canvas, drawn and sent now, before the tables: the page never
        # shows new tables under an old chart (draw_idle waits for the page to ask for it)
        if self.canvas.syncing_data_url:
            self.canvas.draw_idle()
        else:
            self.canvas.draw()

    def _show_dimension(self) -> None:
        if self._quiet:
            return
        chosen = self.dimension.value
        dims = shown(self.x.comparison)["dimensions"]
        if chosen not in (None, ALL_DIMENSIONS):
            values = self.x.dimension_values(chosen)
            dims = values.assign(value=values["value"].map(privacy.mask))
        self.tables["dimensions"].value = table_html(dims, name="dimensions")

    def _show_requests(self) -> None:
        if self._quiet:
            return
        fp = self.fingerprint.value
        if not fp:
            self.requests.value = ""
            return
        df = self.x.requests(fp)
        self.requests.value = "<h4>Requests in the selection that issued it</h4>" + table_html(
            df, name="requests", empty="no request of the selection issued it"
        )
