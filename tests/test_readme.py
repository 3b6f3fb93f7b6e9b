"""The README's first two commands are the promise to a newcomer; CI runs the second one verbatim."""

from __future__ import annotations

import re

from support import ROOT


def commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```sh\n(.+?)\n```", text, flags=re.S)[:2]


def test_readme_starts_with_the_demo_and_the_test_commands() -> None:
    demo, tests = commands()
    assert demo.endswith("watchfloor demo") and "pip install" in demo
    assert "pytest" in tests and "'.[dev]'" in tests


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, tests = commands()
    assert tests in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_procfile_names_the_two_processes() -> None:
    lines = (ROOT / "Procfile").read_text(encoding="utf-8").splitlines()
    assert "web: watchfloor serve" in lines and "worker: watchfloor worker" in lines
