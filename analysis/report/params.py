"""The report's parameters: defaults, a YAML config, flags, and their checks.

The names are the notebook's (CONTRACT section 2); papermill only warns about an unknown
name, so they are checked here before anything runs.
"""

from __future__ import annotations

import glob
import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from analysis import config, engines, errors, ingest, times
from analysis.errors import ParameterError


@dataclass(frozen=True)
class Param:
    """One notebook parameter: the one definition that the notebooks' parameters cell, the
    command's flags, the config file and the checks are made from."""

    name: str
    type: type
    default: Any
    help: str
    #: the flags of ``postmortem report`` (the first is the long name); () for none
    flags: tuple[str, ...] = ()
    metavar: str | None = None
    #: an input option that ``postmortem load`` takes too
    load: bool = False


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


#: every parameter of the notebooks, in the order of their parameters cells
PARAMETERS: tuple[Param, ...] = (
    Param("incident_id", str, config.DEFAULT_INCIDENT_ID,
          "a plain name; the report folder is reports/<incident_id>", ("--incident-id",)),
    Param("incident_start", str, config.DEFAULT_START,
          "declared start of the incident, UTC", ("--start", "--incident-start"), "INSTANT"),
    Param("incident_end", str, config.DEFAULT_END,
          "declared end (exclusive), UTC", ("--end", "--incident-end"), "INSTANT"),
    Param("auth_logs", str, "data/sample/auth_events.jsonl",
          "auth events: a path, a glob, or a list of them", ("--auth", "--auth-logs"), "PATH",
          load=True),
    Param("query_logs", str, "data/sample/db_queries.jsonl",
          "database query log: a path, a glob, or a list", ("--queries", "--query-logs"),
          "PATH", load=True),
    Param("timeline", str, "data/sample/timeline.yaml",
          'responders\' timeline {ts, kind, text}; "" for none', ("--timeline",), "PATH",
          load=True),
    Param("auth_format", str, "auto",
          "auto (by ending, else content), a format or preset, or a FILE.yaml",
          ("--auth-format",), "FORMAT", load=True),
    Param("query_format", str, "auto",
          "auto (by ending, else by content) or a format name", ("--query-format",), "FORMAT",
          load=True),
    Param("database", str, "data/incident.duckdb", "DuckDB file the logs are loaded into",
          ("--database",), "FILE"),
    Param("report_dir", str, "", 'report folder; "" means reports/<incident_id>',
          ("--out", "--report-dir"), "DIR"),
    Param("bucket", str, config.DEFAULT_BUCKET, "time bucket of the series: 30s, 1min, 5min, 1h",
          ("--bucket",)),
    Param("redact_users", bool, True, "pseudonymize user ids in everything written",
          ("--redact-users",)),
    Param("user_error_codes", list, list(config.USER_ERROR_CODES),
          "error codes that are the user's fault; all others are the system's",
          ("--user-error-codes",), "CODE"),
    Param("source_timezone", str, "UTC", "time zone of timestamps written without one",
          ("--source-timezone",), "TZ", load=True),
    Param("log_line_prefix", str, "",
          'PostgreSQL log_line_prefix of the query logs; "" infers it',
          ("--log-line-prefix",), "PREFIX", load=True),
    Param("year", int, 0,
          "year of syslog timestamps (sshd, PostgreSQL syslog); 0: the file's date",
          ("--year",), load=True),
    Param("login_path", list, [],
          "access logs: URL path prefixes of logins; [] for the preset's own",
          ("--login-path",), "PATH", load=True),
    Param(*engines.ALIAS_PARAMETER),
    Param("range_start", str, "",
          "analyse only rows from this instant (UTC, e.g. 2024-01-19T00:00:00Z)",
          ("--range-start",), "INSTANT"),
    Param("range_end", str, "", '... to this instant, exclusive; "" for all the data',
          ("--range-end",), "INSTANT"),
    Param("engine", str, "duckdb",
          "duckdb, in-place or spark: the figures that read rows run on Apache Spark",
          ("--engine",), "ENGINE"),
    Param("spark_master", str, "local[2]",
          "Spark master: local[4], spark://host:7077, yarn", ("--spark-master",), "URL"),
    Param("spark_conf", list, [],
          "Spark session settings, as on --spark-conf; no secrets",
          ("--spark-conf",), "KEY=VALUE"),
    Param("alert_metrics", dict, {},
          "metric names of the alert rules in alerts/ (docs); {}: the defaults",
          ("--alert-metrics",), "YAML"),
    Param("slo_target", float, config.DEFAULT_SLO_TARGET,
          "login SLO: the share of attempts without a system failure", ("--slo-target",),
          "RATIO"),
    Param("slo_window", str, config.DEFAULT_SLO_WINDOW,
          "the login SLO's window, in days (30d) or hours (720h)", ("--slo-window",),
          "DURATION"),
    Param("exploration", bool, False,
          "also run and keep the exploration notebook (explore.ipynb and .html)",
          ("--explore",)),
)  # fmt: skip
BY_NAME = {p.name: p for p in PARAMETERS}
#: every parameter with its default
DEFAULTS: dict[str, Any] = {p.name: p.default for p in PARAMETERS}


def cell_source() -> str:
    """The notebooks' parameters cell, as papermill reads it (literals, a type and a help
    comment each); ``python -m analysis.report.params --write`` puts it in both notebooks."""
    out = []
    for p in PARAMETERS:
        if p.type is list and p.default:
            out.append(f"{p.name}: list = [  # {p.help}")
            out.extend(f"    {json.dumps(v)}," for v in p.default)
            out.append("]")
        else:
            value = json.dumps(p.default) if p.type is not bool else repr(p.default)
            out.append(f"{p.name}: {p.type.__name__} = {value}  # {p.help}")
    return "\n".join(out)


def params_of(namespace: dict[str, Any]) -> dict[str, Any]:
    """The parameters among a notebook's globals (after papermill's injected cell)."""
    return {p.name: namespace[p.name] for p in PARAMETERS if p.name in namespace}


#: parameters that say where things are, not what the evidence is: kept out of the manifest
LOCATIONS = ("database", "report_dir")
INPUTS = ("auth_logs", "query_logs", "timeline")
#: the kinds of input, as sources and views name them
KINDS = ("auth", "queries", "timeline")
AUTH_FORMATS = ("auto", *ingest.names("auth"))
QUERY_FORMATS = ("auto", *ingest.names("queries"))

#: words of a Spark setting that holds a secret (fs.s3a.secret.key, …password, …token)
SECRET_WORDS = ("secret", "password", "token", "credential")

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_incident_id(value: str) -> str:
    """An incident id is a plain name: it becomes a folder name under ``reports/``."""
    if not isinstance(value, str) or not _PLAIN_NAME.fullmatch(value) or ".." in value:
        raise ParameterError(
            f"incident_id {value!r} is not a plain name (letters, digits, '.', '_', '-'; "
            "no slashes, no '..')"
        )
    return value


def read_config(path: Path) -> dict[str, Any]:
    """Parameters from a YAML file (a mapping of parameter names)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ParameterError(f"{path}: no such config file") from exc
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path}: is not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: a config file is a mapping of parameter names")
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise ParameterError(
            f"{path}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}"
        )
    return data


def resolve(given: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with the given values, every value checked.

    Raises
    ------
    ParameterError
        for an unknown name or an unusable value.
    """
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}"
        )
    out = dict(DEFAULTS)
    out.update({k: v for k, v in given.items() if v is not None})
    check_incident_id(out["incident_id"])
    _check_window(out)
    times.bucket_interval(out["bucket"])
    for key, choices in (("auth_format", AUTH_FORMATS), ("query_format", QUERY_FORMATS)):
        value = str(out[key])
        if value not in choices and not ingest.is_definition_file(value):
            raise ParameterError(
                f"{key} {value!r}: one of {', '.join(choices)}, or a source definition FILE.yaml"
            )
    for key in (p.name for p in PARAMETERS if p.type is bool):
        out[key] = _yes_or_no(key, out[key])
    _check_range(out)
    engines.engine_of(out)  # an engine that does not exist is refused here
    _check_spark_conf(out)
    out["user_error_codes"] = _listed(out["user_error_codes"])
    out["login_path"] = [str(x) for x in _listed(out["login_path"])]
    try:
        out["year"] = int(out["year"] or 0)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"year {out['year']!r} is not a year") from exc
    _check_alert_metrics(out)
    _check_slo(out)
    if not out["report_dir"]:
        out["report_dir"] = str(Path("reports") / out["incident_id"])
    return out


_YES, _NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _yes_or_no(key: str, value: Any) -> bool:
    """A yes/no parameter; anything else is refused (``redact_users: maybe`` must never
    write user ids in clear)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _YES or text in _NO:
        return text in _YES
    raise ParameterError(f"{key} {value!r}: true or false")


def _instant(out: dict[str, Any], key: str) -> str:
    """The parameter ``key`` as the instant text it is, or the error naming it (YAML reads
    an unquoted time as a datetime: it is written back as ISO-8601 with a Z)."""
    value = out[key]
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ParameterError(f"{key} {value!s}: give the time zone (Z or an offset)")
        return times.iso(times.parse_instant(value))
    try:
        times.parse_instant(str(value))
    except ValueError as exc:
        raise ParameterError(f"{key} {value!r}: {exc}") from exc
    return str(value)


def _check_window(out: dict[str, Any]) -> None:
    """The declared window: two instants, the end after the start."""
    for key in ("incident_start", "incident_end"):
        out[key] = _instant(out, key)
    if times.parse_instant(out["incident_end"]) <= times.parse_instant(out["incident_start"]):
        raise ParameterError("incident_end must be after incident_start")


def _check_range(out: dict[str, Any]) -> None:
    """The analysed range: each end an instant or empty, the end after the start."""
    for key in ("range_start", "range_end"):
        if out[key]:
            out[key] = _instant(out, key)
    if (
        out["range_start"]
        and out["range_end"]
        and times.parse_instant(out["range_end"]) <= times.parse_instant(out["range_start"])
    ):
        raise ParameterError("range_end must be after range_start")


def _check_spark_conf(out: dict[str, Any]) -> None:
    """Spark settings as a list of KEY=VALUE, none of them a secret."""
    conf = out["spark_conf"]
    out["spark_conf"] = [conf] if isinstance(conf, str) and conf else list(conf or [])
    for item in out["spark_conf"]:
        key = str(item).partition("=")[0].strip()
        if "=" not in str(item) or not key:
            raise ParameterError(f"spark_conf {item!r} is not KEY=VALUE")
        if any(word in key.lower() for word in SECRET_WORDS):
            # every parameter is written into the executed notebook and the manifest
            raise ParameterError(
                f"spark_conf {key}: a secret would be written into the report; give it through "
                "the environment or spark-defaults.conf instead"
            )


def slo_window_days(text: str) -> float:
    """The SLO window in days: ``30d``, ``720h`` or a number of days."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dh]?)\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise ParameterError(f"slo_window {text!r}: a number of days (30d) or hours (720h)")
    n = float(match.group(1))
    return n / 24 if match.group(2) == "h" else n


def _check_slo(out: dict[str, Any]) -> None:
    """The login SLO: a target strictly between 0 and 1, a window of days or hours."""
    try:
        out["slo_target"] = float(out["slo_target"])
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"slo_target {out['slo_target']!r} is not a number") from exc
    if not 0 < out["slo_target"] < 1:
        raise ParameterError(
            f"slo_target {out['slo_target']}: a share between 0 and 1, e.g. 0.999 (99.9%)"
        )
    out["slo_window"] = str(out["slo_window"]).strip()
    slo_window_days(out["slo_window"])


def _listed(value: str | list[Any]) -> list[Any]:
    """A list parameter given as a list, or as one comma-separated text."""
    if isinstance(value, str):
        return [x.strip() for x in value.split(",") if x.strip()]
    return list(value)


def _check_alert_metrics(out: dict[str, Any]) -> None:
    """The alert rules' metric names: the given mapping (or its YAML text), checked."""
    # imported here: the alert rules bring pandas, 0.5 s of every command's start
    from analysis import alerts

    try:
        alerts.metric_mapping(out["alert_metrics"])
    except errors.AlertConfigError as exc:
        raise ParameterError(str(exc)) from exc
    if isinstance(out["alert_metrics"], str):
        out["alert_metrics"] = yaml.safe_load(out["alert_metrics"]) or {}
    out["alert_metrics"] = dict(out["alert_metrics"] or {})


def resolve_path(value: str) -> str:
    """A path parameter as the file it names: relative to the working directory, else to
    the project root (where the sample lives), else as given (the error will name it)."""
    p = Path(value)
    if p.is_absolute():
        return value
    for base in (Path.cwd(), config.PROJECT_ROOT):
        candidate = base / p
        if candidate.exists() or (any(ch in value for ch in "*?[") and glob.glob(str(candidate))):
            return str(candidate)
    return value


def input_list(value: str | list[str] | None) -> list[str]:
    """An input parameter as a list of path texts (a string may hold several, comma-free)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else [str(v) for v in value]
    # an empty text means "none" (never "the working directory")
    return [v for v in items if v.strip()]


def _write_notebooks(paths: list[str]) -> None:
    """Replace the parameters cell of each notebook with :func:`cell_source`."""
    import nbformat

    for path in paths:
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        if len(cells) != 1:
            raise SystemExit(f"{path}: needs exactly one cell tagged parameters")
        cells[0].source = cell_source()
        nbformat.write(nb, path)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        _write_notebooks(sys.argv[2:] or [str(p) for p in config.NOTEBOOKS_DIR.glob("*.ipynb")])
    else:
        print(cell_source())
