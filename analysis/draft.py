"""The postmortem draft and the chart titles, written from ``summary.json`` alone.

Every number here is read from the summary, so the draft can never disagree with it. The
draft follows the structure of the team's postmortems (Duration, Impact, Timeline, Root
cause and resolution, Corrective and preventive measures) and says plainly where the data
contradicts what was declared.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

#: the charts of a report, in the order the draft links them
CHARTS = ("overview", "error_codes", "fingerprints", "affected_users", "dimensions", "bypass")

# what Markdown could read as markup in the middle of a line (a '-' or '.' only matters at
# the start of a line, and data never starts a line here)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>()#|~])")


def md(text: Any) -> str:
    """Text from the data, escaped so that Markdown and HTML show it as it is."""
    s = " ".join(str(text).split())
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


def _t(iso: str | None) -> str:
    if not iso:
        return "n/a"
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return dt.strftime("%H:%M UTC")


def _dt(iso: str | None) -> str:
    if not iso:
        return "n/a"
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return dt.strftime("%B %-d, %Y, %H:%M UTC")


def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def _dur(seconds: int | None) -> str:
    if seconds is None:
        return "n/a"
    sign = "-" if seconds < 0 else ""
    s = abs(int(seconds))
    h, rem = divmod(s, 3600)
    m, _ = divmod(rem, 60)
    return f"{sign}{h} h {m:02d} min" if h else f"{sign}{m} min"


def _num(x: float | None, fmt: str = ",.0f") -> str:
    return "n/a" if x is None else format(x, fmt)


#: how the draft names the detector's signals
SIGNAL_NAMES = {
    "system_failure_rate": "system failures",
    "queries_per_auth": "DB queries per login",
    "latency_p95_ms": "DB p95 latency",
    "user_failure_rate": "user-class failures",
}
#: a dimension value is named as where failures concentrate only below this p-value
SIGNIFICANT_P = 0.01
#: queries per login must rise this much for the draft to call it a rise worth alerting on
AMPLIFIED = 1.5


def _signals(names: list[str] | tuple[str, ...] | None) -> str:
    names = [SIGNAL_NAMES.get(n, n) for n in names or ()]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _has_queries(s: dict[str, Any]) -> bool:
    """True when the report had a query log with rows."""
    q = s["db"].get("queries") or {}
    return bool(q.get("baseline") or q.get("incident"))


def _qpa_measured(s: dict[str, Any]) -> bool:
    qpa = s["db"]["queries_per_auth"]
    return _has_queries(s) and qpa["baseline"] is not None and qpa["incident"] is not None


def _latency_measured(s: dict[str, Any]) -> bool:
    lat = s["db"]["latency_p95_ms"]
    return lat["baseline"] is not None and lat["incident"] is not None


def _top_dimension(s: dict[str, Any]) -> dict[str, Any] | None:
    """The first dimension value when it scores above zero and is significant."""
    dims = s.get("dimensions") or []
    if not dims:
        return None
    d = dims[0]
    p = d.get("p_value")
    if (d.get("score") or 0) <= 0 or (p is not None and p >= SIGNIFICANT_P):
        return None
    return d


def _user_class(s: dict[str, Any]) -> dict[str, Any] | None:
    """The user-class failure figures when they rose far above their baseline."""
    uc = s["auth"].get("user_class")
    return uc if uc and uc.get("far_above_baseline") else None


def _steady_system_failures(s: dict[str, Any]) -> bool:
    """True when the window's system failures run at about their baseline rate (under twice
    it) and the detector did not see them rise: codes that may be the user's under another
    name (a source's own "bad_password"), not an outage."""
    auth = s["auth"]
    rate, base = auth.get("system_error_rate"), auth.get("baseline_system_error_rate")
    det = s["window"]["detected"] or {}
    if "system_failure_rate" in (det.get("by_signal") or {}):
        return False
    return bool(auth["system_failures"] and rate is not None and base and rate < 2 * base)


def charts_for(s: dict[str, Any]) -> list[str]:
    """The charts that have a figure to show, in the draft's order."""
    out = ["overview"]
    auth = s["auth"]
    if auth["failures"] or auth["baseline_error_rate"]:
        out.append("error_codes")
    if s["db"]["top_fingerprints"]:
        out.append("fingerprints")
    if s["impact"]["users_affected"]:
        out.append("affected_users")
    if s.get("dimensions"):
        out.append("dimensions")
    if s["bypass"]["logins"]:
        out.append("bypass")
    return out


def chart_titles(s: dict[str, Any]) -> dict[str, str]:
    """A title for each chart that states its finding."""
    db, auth, imp, bp = s["db"], s["auth"], s["impact"], s["bypass"]
    qpa = db["queries_per_auth"]
    amp = db["amplification"]
    lat = db["latency_p95_ms"]
    overview = f"Auth errors peaked at {_pct(auth['peak_error_rate'], 0)}"
    if amp is not None and _qpa_measured(s):
        overview += f" while DB queries per login rose {amp:.1f}×"
        if _latency_measured(s):
            overview += (
                f" and p95 latency {_num(lat['baseline'], ',.0f')} → "
                f"{_num(lat['incident'], ',.0f')} ms"
            )
    elif _latency_measured(s):
        overview += (
            f"; DB p95 latency {_num(lat['baseline'], ',.0f')} → "
            f"{_num(lat['incident'], ',.0f')} ms"
        )
    titles = {
        "overview": overview,
        "error_codes": (
            f"{auth['system_failures']:,} system failures in the declared window, "
            f"against a baseline error rate of {_pct(auth['baseline_error_rate'])}"
            if auth["baseline_error_rate"] is not None
            else f"{auth['system_failures']:,} system failures in the declared window "
            "(no data outside it to compare)"
        ),
        "affected_users": (
            f"{imp['users_affected']:,} users ({_pct(imp['affected_share'], 0)} of "
            f"{imp['users_active']:,} active) hit a system failure"
        ),
        "bypass": (
            f"{bp['logins']:,} logins skipped the database check, {_t(bp['first'])} to "
            f"{_t(bp['last'])}; {bp['logins_after_declared_end']:,} after the declared end"
            if bp["logins"]
            else "No login bypassed the database check"
        ),
    }
    fps = db["top_fingerprints"]
    if fps:
        top = fps[0]
        fp = top["fingerprint"]
        fp = fp if len(fp) <= 50 else fp[:49] + "…"
        titles["fingerprints"] = (
            f"'{fp}' went from {_num(top['baseline_per_auth'], '.2f')} to "
            f"{_num(top['incident_per_auth'], '.2f')} per login"
        )
    else:
        titles["fingerprints"] = f"No query fingerprints (queries per auth: {qpa['method']})"
    dims = s["dimensions"]
    d = _top_dimension(s)
    if dims and d is None:
        titles["dimensions"] = (
            "No dimension value stands out among the system failures beyond chance"
        )
    elif d is not None:
        titles["dimensions"] = (
            f"Failures concentrate in {d['dimension']} = {d['value']}: "
            f"{_pct(d['incident_share'], 0)} of system failures, "
            f"{_pct(d['baseline_share'], 0)} of attempts"
        )
    else:
        titles["dimensions"] = "No system failure in the window to compare"
    return titles


def headline(s: dict[str, Any]) -> str:
    """Two lines for the terminal after a report."""
    imp, db, w = s["impact"], s["db"], s["window"]
    det = w["detected"]
    detected = f"{_t(det['start'])}–{_t(det['end'])}" if det else "none"
    qpa = (
        f"queries per auth ×{_num(db['amplification'], '.2f')}; "
        if db["amplification"] is not None
        else ""
    )
    return (
        f"affected {imp['users_affected']:,} of {imp['users_active']:,} active users "
        f"({_pct(imp['affected_share'])}); {qpa}"
        f"detected window {detected} (agrees with declared: {w['agrees']})"
    )


def render(s: dict[str, Any], *, figures: list[str] | tuple[str, ...] = CHARTS) -> str:
    """The postmortem draft in Markdown, every figure from the summary."""
    lines: list[str] = []
    lines += header_section(s)
    lines += duration_section(s)
    lines += impact_section(s)
    lines += timeline_section(s)
    lines += root_cause_section(s)
    lines += bypass_section(s)
    lines += measures_section(s)
    lines += evidence_section(s, figures=figures)
    return "\n".join(lines)


def header_section(s: dict[str, Any]) -> list[str]:
    """The title, what the draft is, and a warning when user ids are in clear."""
    lines = [f"# Postmortem draft: {md(s['incident_id'])}", ""]
    lines += [
        "_Generated by Postmortem Lab from the logs; every number below is in "
        "`summary.json`. Edit the prose, keep the numbers._",
        "",
    ]
    if not s.get("redacted", True):
        lines += ["> **Not redacted:** user ids in this report's files are in clear.", ""]
    return lines


def duration_section(s: dict[str, Any]) -> list[str]:
    """Declared and detected windows, the signals that set each edge, and a disagreement."""
    w = s["window"]
    dec, det = w["declared"], w["detected"]
    lines = [
        "## Duration",
        "",
        f"- Start Time (declared): {_dt(dec['start'])}",
        f"- End Time (declared): {_dt(dec['end'])}",
    ]
    if not det:
        lines += [
            "- Window in the data: nothing anomalous found in system failures, DB queries per "
            "login, DB latency or user-class failures",
            "",
        ]
        return lines
    lines.append(f"- Window in the data: {_dt(det['start'])} to {_dt(det['end'])}")
    sig = det.get("signals") or {}
    if sig:
        lines.append(
            f"- Set by: {_signals(sig.get('start'))} at the start, "
            f"{_signals(sig.get('end'))} at the end"
        )
    if det.get("masked_buckets"):
        lines.append(
            f"- For {det['masked_buckets']:,} buckets inside it, most logins bypassed the "
            "database: the auth signals could not be seen there, and the window runs across "
            "them."
        )
    if not w["agrees"]:
        lines += [
            "",
            f"> **The data disagrees with the declared window**: the signals are above "
            f"baseline from {_t(det['start'])} to {_t(det['end'])}, not "
            f"{_t(dec['start'])} to {_t(dec['end'])} (more than 5 minutes apart at one "
            "end at least).",
        ]
    lines.append("")
    return lines


def impact_section(s: dict[str, Any]) -> list[str]:
    """Users affected by system-class failures, attempts, error rates, and a separate line
    for user-class failures far above their baseline."""
    imp, auth = s["impact"], s["auth"]
    lines = ["## Impact", "", "- Service Affected: User Authentication and Authorization"]
    if auth["system_failures"] and _steady_system_failures(s):
        lines.append(
            f"- {imp['users_affected']:,} of {imp['users_active']:,} users active in the "
            f"declared window ({_pct(imp['affected_share'])}) had a login fail with a code "
            f"counted as the system's, but those failures ran at their baseline rate "
            f"({_pct(auth['system_error_rate'], 2)} against "
            f"{_pct(auth['baseline_system_error_rate'], 2)}): not an outage in the data. If "
            "their codes are the user's under another name, list them in `user_error_codes`."
        )
    elif auth["system_failures"]:
        lines.append(
            f"- Users affected: {imp['users_affected']:,} of {imp['users_active']:,} users "
            f"active in the declared window ({_pct(imp['affected_share'])}) had at least one "
            "login fail for a system reason."
        )
    elif auth["attempts"]:
        lines.append(
            f"- No login of the {imp['users_active']:,} users active in the declared window "
            "failed for a system reason."
        )
    uc = _user_class(s)
    if uc:
        users = f"{uc['users']:,} users" if uc.get("users") is not None else "users"
        lines.append(
            f"- User-class failures (codes counted as the user's, such as a wrong password) "
            f"ran far above their baseline: {_pct(uc['rate'])} of attempts against "
            f"{_pct(uc['baseline_rate'])}, {uc['failures']:,} failures of {users}. They may be "
            "part of the outage (a broken deploy can answer good passwords with a user's "
            "error) and are not counted in the users affected above."
        )
    if auth["attempts"]:
        lines.append(
            f"- Auth attempts in the window: {auth['attempts']:,}; failures: "
            f"{auth['failures']:,} ({_pct(auth['error_rate'])}), of which system failures: "
            f"{auth['system_failures']:,}."
        )
        if auth["baseline_error_rate"] is not None and auth["peak_error_rate"] is not None:
            lines.append(
                f"- Error rate: baseline {_pct(auth['baseline_error_rate'])}, peak "
                f"{_pct(auth['peak_error_rate'])} at {_t(auth['peak_minute'])}."
            )
    else:
        lines.append("- No auth attempt in the declared window.")
    lines.append("")
    return lines


def timeline_section(s: dict[str, Any]) -> list[str]:
    """The likely trigger, the detected edges and the times to detect, mitigate, resolve."""
    tl, det = s["timeline"], s["window"]["detected"]
    lines = ["## Timeline", ""]
    trig = tl.get("trigger")
    if trig:
        lead = (
            f"{_dur(trig['lead_s'])} before the signals moved"
            if trig["lead_s"] >= 60
            else "the signals moved the same minute"
        )
        lines.append(f"- Likely trigger: {_t(trig['ts'])} change: {md(trig['text'])} ({lead})")
    sig = (det or {}).get("signals") or {}
    if det:
        what = _signals(sig.get("start")) or "the signals"
        lines.append(f"- {_t(det['start'])}: {what} rise above baseline (from the data)")
    for key, label in (
        ("time_to_detect_s", "Time to detect"),
        ("time_to_mitigate_s", "Time to mitigate"),
        ("time_to_resolve_s", "Time to resolve"),
    ):
        if tl.get(key) is not None:
            lines.append(f"- {label}: {_dur(tl[key])}")
    if det:
        what = _signals(sig.get("end")) or "the signals"
        lines.append(f"- {_t(det['end'])}: {what} back to baseline (from the data)")
    if len(lines) == 2:
        lines.append("- Nothing to place: no timeline events and no window in the data.")
    lines.append("")
    return lines


def root_cause_section(s: dict[str, Any]) -> list[str]:
    """Queries per login, the fingerprint behind the rise, latency and where failures
    concentrate; each only when its figure exists."""
    db = s["db"]
    qpa = db["queries_per_auth"]
    lines = ["## Root cause and resolution", ""]
    if _qpa_measured(s):
        moved = "rose" if qpa["incident"] > qpa["baseline"] else "went"
        amp = f"×{_num(db['amplification'], '.2f')}; " if db["amplification"] is not None else ""
        lines.append(
            f"- Database queries per auth attempt {moved} from {qpa['baseline']:.2f} to "
            f"{qpa['incident']:.2f} ({amp}method: {qpa['method']})."
        )
    elif _has_queries(s) and qpa["method"] == "none":
        lines.append(
            "- No query could be tied to the auth service (no `request_id` match and no "
            "caller named like auth): queries per auth attempt are not measured."
        )
    top = db["top_fingerprints"][0] if db["top_fingerprints"] else None
    if (
        top
        and top["incident_per_auth"] is not None
        and top["incident_per_auth"] > (top["baseline_per_auth"] or 0)
    ):
        lines.append(
            f"- The largest rise is the query `{top['fingerprint'].replace('`', '')}`: "
            f"{_num(top['baseline_per_auth'], '.2f')} → {_num(top['incident_per_auth'], '.2f')} "
            "per auth attempt."
        )
    if _latency_measured(s):
        lat = db["latency_p95_ms"]
        lines.append(
            f"- Database p95 latency: {_num(lat['baseline'], ',.1f')} ms at baseline, "
            f"{_num(lat['incident'], ',.1f')} ms in the window."
        )
    d = _top_dimension(s)
    if d:
        p = d.get("p_value")
        sig = "" if p is None else ("; p < 0.0001" if p < 0.0001 else f"; p = {p:.2g}")
        lines.append(
            f"- Failures concentrate most in {md(d['dimension'])} = {md(d['value'])} "
            f"({_pct(d['incident_share'])} of system failures against "
            f"{_pct(d['baseline_share'])} of attempts{sig})."
        )
    for pair in (s.get("dimension_pairs") or [])[:1]:
        both = " and ".join(
            f"{md(k)} = {md(v)}" for k, v in zip(pair["dimensions"], pair["values"], strict=True)
        )
        lines.append(
            f"- Together, {both} explain more than either alone: {_pct(pair['incident_share'])} "
            f"of system failures against {_pct(pair['baseline_share'])} of attempts."
        )
    if len(lines) == 2:
        lines.append("- The logs give no cause: no query log, latency or dimension to compare.")
    lines.append("")
    return lines


def bypass_section(s: dict[str, Any]) -> list[str]:
    """The security finding, only when logins bypassed the database check."""
    bp, dec = s["bypass"], s["window"]["declared"]
    if not bp["logins"]:
        return []
    lines = ["## Security finding: logins that bypassed the database check", ""]
    lines.append(
        f"- {bp['logins']:,} logins by {bp['users']:,} users were granted without the "
        f"database check, from {_t(bp['first'])} to {_t(bp['last'])} "
        f"({_dur(bp['duration_s'])})."
    )
    if bp["on_at_declared_end"]:
        lines.append(
            f"- **The bypass outlived the fix**: {bp['logins_after_declared_end']:,} "
            f"bypass logins by {bp['users_after_declared_end']:,} users came after the "
            f"declared end ({_t(dec['end'])})."
        )
    if bp["on_at_data_end"]:
        lines.append("- **The bypass was still on at the end of the data.**")
    lines += [
        "- The users to re-verify are listed in `SENSITIVE-bypass-users.csv` "
        "(keyed pseudonyms unless the report says it is not redacted).",
        "",
    ]
    return lines


def measures_section(s: dict[str, Any]) -> list[str]:
    """Corrective and preventive measures, each one following from a finding."""
    bp, imp, db = s["bypass"], s["impact"], s["db"]
    det = s["window"]["detected"] or {}
    moved = set((det.get("by_signal") or {}).keys())
    lines = ["## Corrective and preventive measures", ""]
    if bp["logins"]:
        if bp["on_at_data_end"]:
            lines.append(
                "- Immediate: remove the temporary mitigation that bypassed the database for "
                "logins (still on at the end of the data); re-verify the users who logged in "
                "through it."
            )
        else:
            lines.append(
                f"- Immediate: confirm that the bypass of the database check is gone (last "
                f"bypass login at {_t(bp['last'])}); re-verify the users who logged in through "
                "it."
            )
    if s["auth"]["system_failures"] and imp["users_affected"] and not _steady_system_failures(s):
        lines.append("- Immediate: communicate with affected users.")
    if _user_class(s):
        lines.append(
            "- Immediate: find out whether the user-class failures were the system's (a "
            "deploy, an identity provider) before telling users it was their password."
        )
    amp = db["amplification"]
    if "queries_per_auth" in moved or (amp is not None and amp >= AMPLIFIED):
        lines.append(
            "- Short term: alert on queries per login and on query fingerprints whose rate rises."
        )
    if "latency_p95_ms" in moved:
        lines.append("- Short term: alert on the database's p95 latency against its baseline.")
    if s["timeline"].get("trigger"):
        lines += [
            "- Short term: review configuration changes to critical services before they ship.",
            "- Long term: audit the configuration of critical services regularly.",
        ]
    if len(lines) == 2:
        lines.append("- None follows from the data alone; add the team's.")
    lines.append("")
    return lines


def evidence_section(
    s: dict[str, Any], *, figures: list[str] | tuple[str, ...] = CHARTS
) -> list[str]:
    """The charts that were drawn, the rows read, the span and what lay outside it."""
    lines = ["## Evidence", ""]
    titles = chart_titles(s)
    shown = set(charts_for(s))
    for name in [n for n in CHARTS if n in figures and n in shown]:
        lines.append(f"**{md(titles[name])}**")
        lines.append("")
        lines.append(f"![{md(titles[name])}](figures/{name}.png)")
        lines.append("")
    ing = s["ingest"]
    for key in ("auth", "queries"):
        i = ing.get(key)
        if i and "rows_read" in i:
            lines.append(
                f"- {key} rows: {i['rows_read']:,} read, {i['rows_loaded']:,} loaded, "
                f"{i['rows_rejected']:,} rejected"
            )
    lines += [f"- {note}" for note in span_notes(s)]
    lines += ["- Inputs and their SHA-256: `manifest.json`", ""]
    return lines


def span_notes(s: dict[str, Any]) -> list[str]:
    """What the span left out and whether the bucket grew; nothing when neither happened."""
    out = []
    for key, label in (("auth", "auth events"), ("queries", "queries")):
        far = (s["ingest"].get(key) or {}).get("outside_span")
        if far and far["count"]:
            when = (
                f"on {_dt(far['first'])}"
                if far["first"] == far["last"]
                else f"{_dt(far['first'])} to {_dt(far['last'])}"
            )
            what = f"{far['count']:,} {label} lie" if far["count"] > 1 else f"1 {label[:-1]} lies"
            out.append(
                f"{what} far from the window ({when}): counted, and left out of every figure "
                "and chart"
            )
    sp = s.get("span")
    if sp and sp.get("bucket_grown"):
        out.append(
            f"the series uses {sp['bucket']} buckets, not the {sp['bucket_requested']} asked "
            f"for: {_dt(sp['start'])} to {_dt(sp['end'])} is more than "
            f"{sp['max_buckets']:,} buckets of {sp['bucket_requested']}"
        )
    return out
