"""Charts of the incident: matplotlib, object-oriented, byte-identical on a re-run.

Every chart takes small aggregated frames (never raw rows), draws on an ``ax`` it is given
or creates its own figure, and has a title that states the finding. :func:`save_figure`
writes PNG and SVG without dates, with a fixed hash salt, font and DPI.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from analysis import times  # noqa: E402
from analysis.figures import server_events

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.hashsalt": "postmortem-lab",
    "svg.fonttype": "path",
    "path.simplify": True,
}
DPI = 110
SYSTEM = "#c0392b"
USER = "#7f8c8d"
QUERY = "#2c7fb8"
LATENCY = "#8e44ad"
BYPASS = "#d35400"
DECLARED = "#f1c40f"
DETECTED = "#2c3e50"
KIND_COLOURS = {
    "change": "#8e44ad",
    "detection": "#c0392b",
    "escalation": "#d35400",
    "mitigation": "#27ae60",
    "resolution": "#2980b9",
    "note": "#7f8c8d",
}

matplotlib.rcParams.update(STYLE)


def save_figure(fig: Figure, path: Path, *, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write ``fig`` as ``path.png`` and ``path.svg`` with no date or software in metadata.

    Returns the files written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        target = path.with_suffix("." + fmt)
        metadata = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}.get(fmt)
        with matplotlib.rc_context(STYLE):
            fig.savefig(target, format=fmt, dpi=DPI, metadata=metadata)
        # the layout is worked out by the first drawing; the others keep it (a third of
        # the time of six charts went to constrained layout, done again for the SVG)
        fig.set_layout_engine("none")
        out.append(target)
    return out


def _new(ax: Axes | None, size: tuple[float, float] = (10, 4)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _title(ax: Axes, title: str) -> None:
    """A finding as the title: left-aligned, wrapped so that it never runs off the figure."""
    ax.set_title(textwrap.fill(title, 70), loc="left")


#: at most this many time ticks on an axis, whatever its span (an hour locator over a
#: multi-year axis drew 68,728 ticks)
MAX_TICKS = 12


def _time_axis(ax: Axes) -> None:
    """A UTC time axis with a bounded number of ticks: hours over a day, dates over weeks
    (the date of an hour axis is written once, at its end)."""
    locator = mdates.AutoDateLocator(minticks=3, maxticks=MAX_TICKS, interval_multiples=True)
    ax.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator, show_offset=True)
    ax.xaxis.set_major_formatter(formatter)
    ax.xaxis.set_minor_locator(mdates.AutoDateLocator(maxticks=4 * MAX_TICKS))
    ax.set_xlabel("time (UTC)")


def shade_windows(
    ax: Axes,
    *,
    declared: tuple[datetime, datetime],
    detected: tuple[datetime, datetime] | None = None,
    label: bool = True,
) -> None:
    """Shade the declared window and outline the detected one."""
    ax.axvspan(
        *declared, color=DECLARED, alpha=0.18, lw=0, label="declared window" if label else None
    )
    if detected is not None:
        ax.axvspan(
            *detected,
            fill=False,
            ec=DETECTED,
            lw=1.2,
            ls="--",
            label="detected window" if label else None,
        )


def mark_events(ax: Axes, events: pd.DataFrame, *, labels: bool = True) -> None:
    """Vertical lines at the responders' events, with labels that do not overlap.

    Labels are stacked in rows: an event whose label would run into the previous one in the
    same row moves down a row.
    """
    if events is None or events.empty:
        return
    xmin, xmax = ax.get_xlim()
    span = max(xmax - xmin, 1e-9)
    rows_end: list[float] = []
    for ev in events.itertuples():
        x = mdates.date2num(ev.ts)
        if not xmin <= x <= xmax:
            continue  # an event far from the data would stretch the axis or float outside it
        colour = KIND_COLOURS.get(ev.kind, "#555555")
        ax.axvline(x, color=colour, lw=1, alpha=0.8)
        if not labels:
            continue
        text = f"{ev.ts:%H:%M} {ev.kind}: {ev.text or ''}"
        if len(text) > 48:
            text = text[:47] + "…"
        width = len(text) * 0.0062 * span  # about one character of 9-pt text on a 10-in axis
        row = next((i for i, end in enumerate(rows_end) if x > end), len(rows_end))
        if row == len(rows_end):
            rows_end.append(0.0)
        rows_end[row] = x + width
        ax.annotate(
            text,
            xy=(x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -10 - 11 * row),
            textcoords="offset points",
            fontsize=7,
            color=colour,
            va="top",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
        )


def overview_panels(series: pd.DataFrame) -> list[str]:
    """The overview's panels that have data: the error rate always, queries per auth attempt
    when queries were tied to attempts, latency when there was a query log."""
    panels = ["error_rate"]
    if "auth_queries" in series and float(series["auth_queries"].fillna(0).sum()) > 0:
        panels.append("queries_per_auth")
    if "latency_p95_ms" in series and series["latency_p95_ms"].notna().any():
        panels.append("latency_p95_ms")
    return panels


def plot_overview(
    series: pd.DataFrame,
    *,
    declared: tuple[datetime, datetime],
    detected: tuple[datetime, datetime] | None,
    events: pd.DataFrame,
    title: str,
) -> Figure:
    """Stacked panels on one UTC axis: error rate, queries per auth, DB p95 latency (those
    that have data)."""
    panels = overview_panels(series)
    fig = Figure(figsize=(11, 2.2 + 2.1 * len(panels)), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(len(panels), 1, sharex=True)))
    t = pd.to_datetime(series["bucket"])
    for ax, panel in zip(axes, panels, strict=True):
        if panel == "error_rate":
            _error_rate(ax, t, series, headroom=10)
        elif panel == "queries_per_auth":
            ax.plot(t, series["queries_per_auth"].astype(float), color=QUERY, lw=1.2)
            ax.set_ylabel("DB queries per auth attempt")
            ax.set_ylim(0, None)
        else:
            ax.plot(t, series["latency_p95_ms"].astype(float), color=LATENCY, lw=1.2)
            ax.set_yscale("log")
            ax.set_ylabel("DB latency p95 (ms, log)")
    for i, ax in enumerate(axes):
        shade_windows(ax, declared=declared, detected=detected, label=i == 0)
    _time_axis(axes[-1])
    if len(t):
        for ax in axes:
            ax.set_xlim(t.min(), t.max())
    for i, ax in enumerate(axes):
        mark_events(ax, events, labels=i == 0)
    fig.suptitle(title, fontsize=12, fontweight="bold")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    return fig


def _error_rate(ax: Axes, t: pd.Series, series: pd.DataFrame, *, headroom: float) -> None:
    """The auth error rate as system and user errors stacked, in percent, with room above
    the highest bucket (``headroom`` points) for the annotations of its chart."""
    ax.stackplot(
        t,
        100 * series["system_error_rate"].fillna(0).astype(float),
        100 * series["user_error_rate"].fillna(0).astype(float),
        colors=[SYSTEM, USER],
        labels=["system errors", "user errors"],
        alpha=0.85,
        lw=0,
    )
    ax.set_ylabel("auth error rate (%)")
    ax.set_ylim(0, max(5, 100 * float(series["error_rate"].fillna(0).max()) * 1.25 + headroom))


SELECTION = "#2c7fb8"
BASELINE = "#7f8c8d"


def plot_selection(
    series: pd.DataFrame,
    *,
    selection: tuple[datetime, datetime],
    baseline: tuple[datetime, datetime] | None,
    declared: tuple[datetime, datetime],
    events: pd.DataFrame,
    title: str,
    ax: Axes | None = None,
) -> Axes:
    """The auth error rate over all the data with a selection and its baseline shaded (the
    explorer's chart; ``baseline`` None: the rest). The two shadings carry the gids
    ``selection`` and ``baseline``, so that an interactive chart can move them."""
    fig, ax = _new(ax, (11, 3.2))
    t = pd.to_datetime(series["bucket"])
    _error_rate(ax, t, series, headroom=5)
    shade_windows(ax, declared=declared)
    lo, hi = baseline if baseline is not None else selection
    base = ax.axvspan(lo, hi, color=BASELINE, alpha=0.25, lw=0, label="baseline")
    base.set_gid("baseline")
    base.set_visible(baseline is not None)
    sel = ax.axvspan(*selection, color=SELECTION, alpha=0.3, lw=0, label="selection")
    sel.set_gid("selection")
    _time_axis(ax)
    if len(t):
        ax.set_xlim(t.min(), t.max())
    mark_events(ax, events, labels=False)
    ax.legend(fontsize=8, loc="upper left", ncols=5, frameon=False)
    _title(ax, title)
    return ax


def plot_error_codes(
    codes: pd.DataFrame,
    *,
    declared: tuple[datetime, datetime],
    title: str,
    ax: Axes | None = None,
    every: str = "5min",
) -> Axes:
    """Failures per error code, stacked, in buckets of ``every`` (one-minute counts of a
    small service are too sparse to read)."""
    fig, ax = _new(ax)
    if not codes.empty:
        wide = codes.pivot_table(
            index="bucket", columns="error_code", values="failures", aggfunc="sum"
        )
        wide.index = pd.to_datetime(wide.index)
        wide = wide.resample(every).sum().fillna(0)
        order = list(wide.sum().sort_values(ascending=False).index)
        system = codes.groupby("error_code")["is_system"].first()
        colours = _code_colours(order, system)
        ax.stackplot(
            wide.index,
            *[wide[c] for c in order],
            labels=order,
            colors=colours,
            step="post",
            lw=0,
            alpha=0.9,
        )
        ax.legend(fontsize=8, loc="upper right")
    shade_windows(ax, declared=declared, label=False)
    ax.set_ylabel(f"failures per {every}")
    _time_axis(ax)
    _title(ax, title)
    return ax


def _code_colours(order: list[str], system: pd.Series) -> list[str]:
    """Reds for the system's error codes, greys for the user's."""
    reds = ["#c0392b", "#e67e22", "#8e44ad", "#d35400", "#e74c3c", "#6c3483"]
    greys = ["#7f8c8d", "#95a5a6", "#bdc3c7", "#566573"]
    out, r, g = [], 0, 0
    for code in order:
        if bool(system.get(code, True)):
            out.append(reds[r % len(reds)])
            r += 1
        else:
            out.append(greys[g % len(greys)])
            g += 1
    return out


def plot_fingerprints(
    fps: pd.DataFrame, *, title: str, ax: Axes | None = None, width: int = 48
) -> Axes:
    """Per-auth rate of the top fingerprints, baseline beside incident."""
    fig, ax = _new(ax, (10, 4.5))
    top = fps.head(8).iloc[::-1]
    y = np.arange(len(top))
    labels = [textwrap.shorten(f, width, placeholder="…") for f in top["fingerprint"]]
    ax.barh(y - 0.2, top["baseline_per_auth"].fillna(0), 0.4, color=USER, label="baseline")
    ax.barh(y + 0.2, top["incident_per_auth"].fillna(0), 0.4, color=SYSTEM, label="incident")
    ax.set_yticks(y, labels, fontsize=7, family="DejaVu Sans Mono")
    ax.set_xlabel("queries per auth attempt")
    ax.legend(fontsize=8, loc="lower right")
    _title(ax, title)
    ax.grid(axis="y", visible=False)
    return ax


def plot_affected_users(
    first_failures: pd.DataFrame,
    *,
    declared: tuple[datetime, datetime],
    title: str,
    ax: Axes | None = None,
) -> Axes:
    """Cumulative count of users with their first system failure by then."""
    fig, ax = _new(ax)
    if not first_failures.empty:
        t = pd.to_datetime(first_failures["bucket"])
        ax.step(t, first_failures["users"].cumsum(), where="post", color=SYSTEM, lw=1.5)
    shade_windows(ax, declared=declared, label=False)
    ax.set_ylabel("users affected (cumulative)")
    ax.set_ylim(0, None)
    _time_axis(ax)
    _title(ax, title)
    return ax


def plot_dimensions(dims: pd.DataFrame, *, title: str, ax: Axes | None = None) -> Axes:
    """Share of system failures against share of attempts, per dimension value."""
    fig, ax = _new(ax, (10, 4.5))
    top = dims.head(10).iloc[::-1]
    y = np.arange(len(top))
    labels = [f"{d} = {v}" for d, v in zip(top["dimension"], top["value"], strict=True)]
    ax.barh(
        y - 0.2,
        100 * top["baseline_share"].astype(float),
        0.4,
        color=USER,
        label="share of attempts in window",
    )
    ax.barh(
        y + 0.2,
        100 * top["incident_share"].astype(float),
        0.4,
        color=SYSTEM,
        label="share of system failures in window",
    )
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("share (%)")
    ax.legend(fontsize=8, loc="lower right")
    _title(ax, title)
    ax.grid(axis="y", visible=False)
    return ax


def plot_bypass(
    series: pd.DataFrame,
    *,
    declared: tuple[datetime, datetime],
    events: pd.DataFrame,
    title: str,
    ax: Axes | None = None,
) -> Axes:
    """Logins granted without the database check, per bucket."""
    fig, ax = _new(ax)
    t = pd.to_datetime(series["bucket"])
    ax.fill_between(
        t,
        series["bypass_logins"].astype(float),
        step="post",
        color=BYPASS,
        alpha=0.8,
        lw=0,
        label="bypass logins",
    )
    shade_windows(ax, declared=declared, label=True)
    ax.set_ylabel("bypass logins per bucket")
    ax.set_xlim(t.min(), t.max())
    _time_axis(ax)
    mark_events(ax, events)
    ax.legend(fontsize=8, loc="center left")
    _title(ax, title)
    return ax


def png_bytes(fig: Figure) -> bytes:
    """A figure as PNG bytes, for showing in a notebook without writing a file."""
    import io

    buf = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def html_image(png: bytes, alt: str) -> str:
    """An ``<img>`` holding the PNG itself (base64), so that a notebook and its standalone
    HTML show exactly the bytes given; ``alt`` is the chart's finding."""
    import base64
    import html

    data = base64.b64encode(png).decode("ascii")
    return (
        f'<img alt="{html.escape(alt, quote=True)}" style="max-width: 100%" '
        f'src="data:image/png;base64,{data}">'
    )


def plot_server_events(
    events_per_bucket: pd.DataFrame,
    *,
    declared: tuple[datetime, datetime],
    bucket: str,
    title: str,
    timeline: pd.DataFrame | None = None,
    ax: Axes | None = None,
) -> Axes:
    """The database's errors per bucket, stacked by kind, the declared window shaded."""
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        ax = Figure(figsize=(10, 4.5), layout="constrained").add_subplot()
    width = times.bucket_seconds(bucket) / 86400  # matplotlib's dates are in days
    if not events_per_bucket.empty:
        wide = events_per_bucket.pivot_table(
            index="bucket", columns="kind", values="events", aggfunc="sum"
        ).fillna(0)
        x = mdates.date2num(pd.to_datetime(wide.index).to_pydatetime())
        bottom = None
        for kind in [k for k in server_events.KINDS if k in wide.columns]:
            ax.bar(
                x,
                wide[kind].to_numpy(),
                width=width,
                bottom=bottom,
                align="edge",
                color=server_events.COLOURS[kind],
                label=server_events.KINDS[kind],
                lw=0,
                zorder=2,  # above the shaded window
            )
            bottom = wide[kind].to_numpy() if bottom is None else bottom + wide[kind].to_numpy()
        ax.legend(fontsize=8, loc="upper right")
    shade_windows(ax, declared=declared, label=False)
    if timeline is not None:
        mark_events(ax, timeline, labels=False)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"errors per {bucket}")
    ax.xaxis.set_major_locator(mdates.AutoDateLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.set_xlabel("time (UTC)")
    ax.set_title(textwrap.fill(title, 70), loc="left")
    return ax


# --- the report's charts by name ---


@dataclass(frozen=True)
class ChartData:
    """What the report's charts are drawn from (the tables behind ``summary.json``)."""

    series: pd.DataFrame
    error_codes: pd.DataFrame
    fingerprints: pd.DataFrame
    dimensions: pd.DataFrame
    events: pd.DataFrame
    declared: tuple[datetime, datetime]
    detected: tuple[datetime, datetime] | None
    #: users per bucket of their first system failure; computed only for its chart
    first_failures: Callable[[], pd.DataFrame]
    #: the database's own errors per bucket and kind; computed only for its chart
    server_events: Callable[[], pd.DataFrame] = pd.DataFrame
    bucket: str = "1min"
    #: the width of the error codes' bars
    error_bars: str = "5min"


def _one_axes(
    draw: Callable[[ChartData, str, Axes], object],
) -> Callable[[ChartData, str], Figure]:
    def make(data: ChartData, title: str) -> Figure:
        fig = Figure(figsize=(10, 4.5), layout="constrained")
        draw(data, title, fig.add_subplot())
        return fig

    return make


#: name -> a function of the chart data and the chart's title giving the figure
CHARTS: dict[str, Callable[[ChartData, str], Figure]] = {
    "overview": lambda d, title: plot_overview(
        d.series, declared=d.declared, detected=d.detected, events=d.events, title=title
    ),
    "error_codes": _one_axes(
        lambda d, title, ax: plot_error_codes(
            d.error_codes, declared=d.declared, title=title, ax=ax, every=d.error_bars
        )
    ),
    "fingerprints": _one_axes(
        lambda d, title, ax: plot_fingerprints(d.fingerprints, title=title, ax=ax)
    ),
    "affected_users": _one_axes(
        lambda d, title, ax: plot_affected_users(
            d.first_failures(), declared=d.declared, title=title, ax=ax
        )
    ),
    "dimensions": _one_axes(
        lambda d, title, ax: plot_dimensions(d.dimensions, title=title, ax=ax)
    ),
    "server_events": _one_axes(
        lambda d, title, ax: plot_server_events(
            d.server_events(),
            declared=d.declared,
            bucket=d.bucket,
            title=title,
            timeline=d.events,
            ax=ax,
        )
    ),
    "bypass": _one_axes(
        lambda d, title, ax: plot_bypass(
            d.series, declared=d.declared, events=d.events, title=title, ax=ax
        )
    ),
}


@dataclass(frozen=True)
class Given:
    """A table read beforehand, standing in for the callable that would read it (it goes
    to the helper process that draws half of the charts, which has no database)."""

    value: pd.DataFrame

    def __call__(self) -> pd.DataFrame:
        return self.value


def draw_and_save(name: str, data: ChartData, title: str, path: Path) -> list[Path]:
    """Draw the chart ``name`` and save it as ``path.png`` and ``path.svg``; the files."""
    return save_figure(draw(name, data, title=title), path)


def draw(name: str, data: ChartData, *, title: str) -> Figure:
    """The report's chart ``name`` (one of :data:`CHARTS`)."""
    if name not in CHARTS:
        raise ValueError(f"no chart named {name!r}; one of {', '.join(CHARTS)}")
    return CHARTS[name](data, title)
