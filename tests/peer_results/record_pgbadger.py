"""Record pgbadger's counts for every PostgreSQL log of ../shared/real-logs.

Run from the project root where ``pgbadger`` is installed (``apt-get install pgbadger``):

    .venv/bin/python tests/peer_results/record_pgbadger.py

It runs each file's command (below, written into the JSON as run) and rewrites
``tests/peer_results/pgbadger.json`` with ``queries_number`` (``overall_stat``) and the
class sizes (the ``count`` of each ``normalyzed_info`` entry, largest first). pgbadger
detects most formats itself; where it cannot, the options are those of pgbadger's own
tests in its ``t/`` folder (``-f csv`` for csvlog, ``-p`` for the prefix).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REAL = Path("../shared/real-logs")
OUT = Path(__file__).with_name("pgbadger.json")

#: the options each file is read with (none: pgbadger detects the format)
OPTIONS = {
    "pgbadger/anonymize.log": "-f csv",
    "pgbadger/begin_end.log": "-p '%t [%p]: db=%d,user=%u,app=%a,client=%h '",
    "pgbadger/cloudsql.log.gz": "",
    "pgbadger/cnpg.log.gz": "-f jsonlog",
    "pgbadger/csv_statement_without_duration.log": "-f csv",
    "pgbadger/light.postgres.log.bz2": "",
    "pgbadger/logplex.gz": "",
    "pgbadger/multiline_param.log": "",
    "pgbadger/pg-timezones.log": "-p '%t:%h:%u@%d:[%p]:'",
    "pgbadger/pg_rawcsv.log": "",
    "pgbadger/pg_vacuums.json.gz": "",
    "pgbadger/postgresql_param_range.log": (
        "-f stderr --prefix '%t [%p]: [%l-1] [%x] usr=%u,db=%d,appli=%a '"
    ),
    "pgbadger/queryid.log.gz": "",
    "pgbadger/stmt_type.log": "",
    "pgbadger/tempfile_only.log.gz": "",
    "pgbadger/weeknumber.log": "-f csv",
    "lnav/logfile_postgres.1": "-f stderr",
    "elastic-beats/postgresql-9.6-debian-with-slowlog.log": "",
}

NOTE = (
    "Run from the project root with the files of ../shared/real-logs, by "
    "tests/peer_results/record_pgbadger.py. queries_number is overall_stat.queries_number; "
    "class_sizes are the counts of normalyzed_info, largest first. Options are given where "
    "pgbadger cannot detect the format itself, as in pgbadger's own t/ tests: -f csv for "
    "csvlog, -p/--prefix for begin_end.log, pg-timezones.log and postgresql_param_range.log "
    "(whose prefix pgbadger cannot detect), -f jsonlog for cnpg.log.gz (12.0 has no "
    "CloudNativePG reader and finds 0), -f stderr for logfile_postgres.1. pgbadger counts a "
    "'statement:' entry of log_statement without a duration as a query (cloudsql.log.gz, "
    "csv_statement_without_duration.log)."
)


def version() -> str:
    out = subprocess.run(["pgbadger", "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def record(name: str, options: str, tmp: Path) -> dict:
    out = tmp / "out.json"
    command = f"pgbadger -q {options + ' ' if options else ''}-x json -o out.json {REAL / name}"
    args = shlex.split(command.replace("-o out.json", f"-o {out}"))
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True, timeout=600)
    report = json.loads(out.read_text(encoding="utf-8"))
    classes = [
        int(v.get("count", 0))
        for per_db in report.get("normalyzed_info", {}).values()
        for v in per_db.values()
    ]
    out.unlink()
    return {
        "command": command,
        "queries_number": int(report.get("overall_stat", {}).get("queries_number", 0)),
        "class_sizes": sorted(classes, reverse=True),
    }


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        files = {name: record(name, opts, Path(tmp)) for name, opts in OPTIONS.items()}
    doc = {"tool": f"{version()} (Debian package)", "note": NOTE, "files": files}
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    # a list of class sizes on one line, as a person reads it
    text = re.sub(
        r"\[\s+([\d,\s]+?)\s+\]",
        lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]",
        text,
    )
    OUT.write_text(text + "\n", encoding="utf-8")
    for name, r in files.items():
        print(f"{r['queries_number']:>6}  {name}")  # noqa: T201 - a script's output
    return 0


if __name__ == "__main__":
    sys.exit(main())
