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

from analysis import alerts, server_events

#: the charts of a report, in the order the draft links them
CHARTS = ("overview", "error_codes", "fingerprints", "affected_users", "dimensions", "bypass")
#: charts drawn only when their data exist: the database's own errors
OPTIONAL_CHARTS = ("server_events",)

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


def chart_titles(s: dict[str, Any]) -> dict[str, str]:
    """A title for each chart that states its finding."""
    db, auth, imp, bp = s["db"], s["auth"], s["impact"], s["bypass"]
    qpa = db["queries_per_auth"]
    amp = db["amplification"]
    titles = {
        "overview": (
            f"Auth errors peaked at {_pct(auth['peak_error_rate'], 0)} while DB queries per "
            f"login rose {amp:.1f}× and p95 latency "
            f"{_num(db['latency_p95_ms']['baseline'], ',.0f')} → "
            f"{_num(db['latency_p95_ms']['incident'], ',.0f')} ms"
            if amp is not None
            else f"Auth errors peaked at {_pct(auth['peak_error_rate'], 0)}"
        ),
        "error_codes": (
            f"{auth['system_failures']:,} system failures in the declared window, "
            f"against a baseline error rate of {_pct(auth['baseline_error_rate'])}"
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
    titles["server_events"] = server_events.title(s)
    dims = s["dimensions"]
    if dims:
        d = dims[0]
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
    return (
        f"affected {imp['users_affected']:,} of {imp['users_active']:,} active users "
        f"({_pct(imp['affected_share'])}); queries per auth ×{_num(db['amplification'], '.2f')}; "
        f"detected window {detected} (agrees with declared: {w['agrees']})"
    )


def render(s: dict[str, Any], *, figures: list[str] | tuple[str, ...] = CHARTS) -> str:
    """The postmortem draft in Markdown, every figure from the summary."""
    w, imp, auth, db, bp, tl = (
        s["window"],
        s["impact"],
        s["auth"],
        s["db"],
        s["bypass"],
        s["timeline"],
    )
    dec, det = w["declared"], w["detected"]
    qpa = db["queries_per_auth"]
    lines: list[str] = [f"# Postmortem draft: {md(s['incident_id'])}", ""]
    lines += [
        "_Generated by Postmortem Lab from the logs; every number below is in "
        "`summary.json`. Edit the prose, keep the numbers._",
        "",
    ]
    if not s.get("redacted", True):
        lines += ["> **Not redacted:** user ids in this report's files are in clear.", ""]
    lines += ["## Duration", ""]
    lines += [
        f"- Start Time (declared): {_dt(dec['start'])}",
        f"- End Time (declared): {_dt(dec['end'])}",
    ]
    if det:
        lines += [f"- Window in the data: {_dt(det['start'])} to {_dt(det['end'])}"]
        if not w["agrees"]:
            lines += [
                "",
                f"> **The data disagrees with the declared window**: failures above baseline "
                f"run from {_t(det['start'])} to {_t(det['end'])}, not "
                f"{_t(dec['start'])} to {_t(dec['end'])} (more than 5 minutes apart at one "
                "end at least).",
            ]
    else:
        lines += ["- Window in the data: nothing anomalous found in the system-failure rate"]
    lines += ["", "## Impact", ""]
    lines += [
        "- Service Affected: User Authentication and Authorization",
        f"- Users affected: {imp['users_affected']:,} of {imp['users_active']:,} users active "
        f"in the declared window ({_pct(imp['affected_share'])}) had at least one login fail "
        "for a system reason.",
        f"- Auth attempts in the window: {auth['attempts']:,}; failures: {auth['failures']:,} "
        f"({_pct(auth['error_rate'])}), of which system failures: "
        f"{auth['system_failures']:,}.",
        f"- Error rate: baseline {_pct(auth['baseline_error_rate'])}, peak "
        f"{_pct(auth['peak_error_rate'])} at {_t(auth['peak_minute'])}.",
        "",
        "## Timeline",
        "",
    ]
    trig = tl.get("trigger")
    if trig:
        lines.append(
            f"- Likely trigger: {_t(trig['ts'])} change: {md(trig['text'])} "
            f"({_dur(trig['lead_s'])} before the failures began)"
        )
    if det:
        lines.append(f"- {_t(det['start'])}: failures rise above baseline (from the data)")
    lines += [
        f"- Time to detect: {_dur(tl['time_to_detect_s'])}",
        f"- Time to mitigate: {_dur(tl['time_to_mitigate_s'])}",
        f"- Time to resolve: {_dur(tl['time_to_resolve_s'])}",
    ]
    if det:
        lines.append(f"- {_t(det['end'])}: failures back to baseline (from the data)")
    lines += ["", "## Root cause and resolution", ""]
    if qpa["baseline"] is not None and qpa["incident"] is not None:
        moved = "rose" if qpa["incident"] > qpa["baseline"] else "went"
        lines.append(
            f"- Database queries per auth attempt {moved} from {qpa['baseline']:.2f} to "
            f"{qpa['incident']:.2f} (×{_num(db['amplification'], '.2f')}; method: "
            f"{qpa['method']})."
        )
    elif qpa["method"] == "none":
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
    lat = db["latency_p95_ms"]
    lines.append(
        f"- Database p95 latency: {_num(lat['baseline'], ',.1f')} ms at baseline, "
        f"{_num(lat['incident'], ',.1f')} ms in the window."
    )
    said = server_events.draft_sentence(s)
    if said:
        lines.append(said)
    if s["dimensions"]:
        d = s["dimensions"][0]
        lines.append(
            f"- Failures concentrate most in {md(d['dimension'])} = {md(d['value'])} "
            f"({_pct(d['incident_share'])} of system failures against "
            f"{_pct(d['baseline_share'])} of attempts)."
        )
    lines += ["", "## Security finding: logins that bypassed the database check", ""]
    if bp["logins"]:
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
        lines.append(
            "- The users to re-verify are listed in `SENSITIVE-bypass-users.csv` "
            "(keyed pseudonyms unless the report says it is not redacted)."
        )
    else:
        lines.append("- No login was granted with `auth_path = bypass`.")
    lines += [
        "",
        "## Corrective and preventive measures",
        "",
        "- Immediate: remove the temporary mitigation that bypassed the database for logins; "
        "re-verify the users who logged in through it.",
        "- Immediate: communicate with affected users.",
        "- Short term: alert on queries per login and on query fingerprints whose rate rises.",
        "- Short term: review configuration changes to critical services before they ship.",
        "- Long term: audit the configuration of critical services regularly.",
        "",
        "## Evidence",
        "",
    ]
    titles = chart_titles(s)
    for name in [n for n in CHARTS + OPTIONAL_CHARTS if n in figures]:
        lines.append(f"**{md(titles[name])}**")
        lines.append("")
        lines.append(f"![{md(titles[name])}](figures/{name}.png)")
        lines.append("")
    ing = s["ingest"]
    for key in ("auth", "queries"):
        if ing.get(key):
            i = ing[key]
            lines.append(
                f"- {key} rows: {i['rows_read']:,} read, {i['rows_loaded']:,} loaded, "
                f"{i['rows_rejected']:,} rejected"
                + (
                    f", {i['rows_skipped']:,} skipped (not attempts or queries)"
                    if i.get("rows_skipped")
                    else ""
                )
            )
    lines += ["- Inputs and their SHA-256: `manifest.json`", ""]
    lines += alerts.draft_section(s)
    return "\n".join(lines)
