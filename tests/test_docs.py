"""The front door and the documentation site: the README fits on two screens and opens with
the two commands, the site builds with every link checked, and the tables generated from
the registries are current."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tools import docs_tables

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_is_short_and_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    first_block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    assert [line.split()[:2] for line in first_block.splitlines()] == [
        ["make", "report"],
        ["make", "test"],
    ]
    assert text.index("```sh") < text.index("\n## ")  # before any section


def test_every_link_of_the_readme_to_the_docs_names_a_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#]+)", text)
    assert links and [link for link in links if not (ROOT / link).is_file()] == []


def test_the_generated_tables_are_current():
    for page in docs_tables.TABLES:
        text = (ROOT / "docs" / page).read_text(encoding="utf-8")
        assert docs_tables.current(page, text) == text, "python -m tools.docs_tables --write"


def test_the_tables_name_every_format_and_parameter():
    from analysis import ingest, report

    formats = docs_tables.formats_table()
    assert all(f"| `{name}` |" in formats for name in ingest.READERS)
    parameters = docs_tables.parameters_table()
    assert all(f"| `{p.name}` |" in parameters for p in report.PARAMETERS)


def test_the_site_builds_with_every_link_and_anchor_checked(tmp_path):
    mkdocs = Path(sys.executable).with_name("mkdocs")
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "site/getting-started/index.html").read_text(encoding="utf-8")
    assert "postmortem init" in page and 'src="../images/overview.png"' in page


def test_a_broken_link_fails_the_build(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# x\n\n[gone](nowhere.md)\n", encoding="utf-8")
    (tmp_path / "mkdocs.yml").write_text(
        (ROOT / "mkdocs.yml").read_text(encoding="utf-8").split("\nnav:")[0] + "\n",
        encoding="utf-8",
    )
    mkdocs = Path(sys.executable).with_name("mkdocs")
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode != 0 and "nowhere.md" in done.stderr
