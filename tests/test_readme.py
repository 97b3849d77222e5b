"""The README and docs/ stay true for a new user on another machine (issue 13): short, no commands a minimal
machine lacks, every run.sh command it names exists, every link resolves, no lab-notebook phrasing."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = {path: path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}


def test_the_readme_is_what_a_user_needs_and_short() -> None:
    assert len(README.splitlines()) < 200
    for section in (
        "## The two commands",
        "## API at a glance",
        "## Architecture",
        "## Reliability",
        "## Deployment",
        "## Docs",
    ):
        assert section in README, section
    assert "./run.sh test" in README and ".ci/run" in README and "skip" in README


def test_no_command_a_minimal_machine_lacks_and_the_run_sh_commands_exist() -> None:
    run_sh = (ROOT / "run.sh").read_text()
    for path, text in DOCS.items():
        assert "uuidgen" not in text, path
        for command in set(re.findall(r"\./run\.sh ([\w-]+)", text)):
            assert re.search(rf"^\s+{command}\)", run_sh, re.M), f"{path.name}: ./run.sh {command} does not exist"


def test_every_relative_link_resolves() -> None:
    for path, text in DOCS.items():
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not target.startswith(("http://", "https://")):
                assert (path.parent / target).exists(), f"{path.name} links to {target}"


def test_no_lab_notebook_phrasing() -> None:
    for path, text in DOCS.items():
        for phrase in ("this session", "the issue's", "earlier machines", "Current code,"):
            assert phrase.lower() not in text.lower(), f"{path.name}: {phrase!r}"
