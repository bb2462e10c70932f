"""The report's parameters: defaults, a YAML config, flags, and their checks.

The names are the notebook's (CONTRACT section 2); papermill only warns about an unknown
name, so they are checked here before anything runs.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Any

import yaml

from analysis import config, metrics

#: every parameter of notebooks/incident_report.ipynb, with its default
DEFAULTS: dict[str, Any] = {
    "incident_id": config.DEFAULT_INCIDENT_ID,
    "incident_start": config.DEFAULT_START,
    "incident_end": config.DEFAULT_END,
    "auth_logs": "data/sample/auth_events.jsonl",
    "query_logs": "data/sample/db_queries.jsonl",
    "timeline": "data/sample/timeline.yaml",
    "auth_format": "auto",
    "query_format": "auto",
    "database": "data/incident.duckdb",
    "report_dir": "",
    "bucket": config.DEFAULT_BUCKET,
    "redact_users": True,
    "user_error_codes": list(config.USER_ERROR_CODES),
    "source_timezone": "UTC",
    "log_line_prefix": "",
    "year": 0,
    "in_place": False,
    "range_start": "",
    "range_end": "",
    "engine": "duckdb",
    "spark_master": "local[2]",
    "spark_conf": [],
}
#: parameters that say where things are, not what the evidence is: kept out of the manifest
LOCATIONS = ("database", "report_dir")
INPUTS = ("auth_logs", "query_logs", "timeline")
#: the kinds of input, as sources and views name them
KINDS = ("auth", "queries", "timeline")
AUTH_FORMATS = ("auto", "jsonl", "csv", "parquet", "sshd")
ENGINES = ("duckdb", "spark")
QUERY_FORMATS = ("auto", "jsonl", "csv", "parquet", "postgres", "mysql-slow")

#: words of a Spark setting that holds a secret (fs.s3a.secret.key, …password, …token)
_SECRET_WORDS = ("secret", "password", "token", "credential")

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class ParameterError(ValueError):
    """A parameter is unknown or its value is not usable."""


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
    for key in ("incident_start", "incident_end"):
        try:
            metrics.parse_instant(str(out[key]))
        except ValueError as exc:
            raise ParameterError(f"{key} {out[key]!r}: {exc}") from exc
        out[key] = str(out[key])
    if metrics.parse_instant(out["incident_end"]) <= metrics.parse_instant(out["incident_start"]):
        raise ParameterError("incident_end must be after incident_start")
    metrics.bucket_interval(out["bucket"])
    if out["auth_format"] not in AUTH_FORMATS:
        raise ParameterError(f"auth_format {out['auth_format']!r}: one of {AUTH_FORMATS}")
    if out["query_format"] not in QUERY_FORMATS:
        raise ParameterError(f"query_format {out['query_format']!r}: one of {QUERY_FORMATS}")
    for key in ("redact_users", "in_place"):
        if isinstance(out[key], str):
            out[key] = out[key].strip().lower() in ("1", "true", "yes")
    for key in ("range_start", "range_end"):
        if out[key]:
            try:
                metrics.parse_instant(str(out[key]))
            except ValueError as exc:
                raise ParameterError(f"{key} {out[key]!r}: {exc}") from exc
            out[key] = str(out[key])
    if (
        out["range_start"]
        and out["range_end"]
        and metrics.parse_instant(out["range_end"]) <= metrics.parse_instant(out["range_start"])
    ):
        raise ParameterError("range_end must be after range_start")
    if out["engine"] not in ENGINES:
        raise ParameterError(f"engine {out['engine']!r}: one of {ENGINES}")
    conf = out["spark_conf"]
    out["spark_conf"] = [conf] if isinstance(conf, str) and conf else list(conf or [])
    for item in out["spark_conf"]:
        key = str(item).partition("=")[0].strip()
        if "=" not in str(item) or not key:
            raise ParameterError(f"spark_conf {item!r} is not KEY=VALUE")
        if any(word in key.lower() for word in _SECRET_WORDS):
            # every parameter is written into the executed notebook and the manifest
            raise ParameterError(
                f"spark_conf {key}: a secret would be written into the report; give it through "
                "the environment or spark-defaults.conf instead"
            )
    codes = out["user_error_codes"]
    if isinstance(codes, str):
        codes = [c.strip() for c in codes.split(",") if c.strip()]
    out["user_error_codes"] = list(codes)
    try:
        out["year"] = int(out["year"] or 0)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"year {out['year']!r} is not a year") from exc
    if not out["report_dir"]:
        out["report_dir"] = str(Path("reports") / out["incident_id"])
    return out


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
