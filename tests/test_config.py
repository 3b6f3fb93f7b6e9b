"""config.toml validation: every problem named with its place, typos never ignored."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import FIXTURES, ROOT

from bot.cli import main
from bot.config import ConfigError, load_config, parse_config

MINIMAL = (FIXTURES / "config" / "minimal.toml").read_text()


def problems(raw: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "config.toml"
    path.write_text(raw)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def test_shipped_config_is_valid_and_has_the_required_topics() -> None:
    config = load_config(ROOT / "config.toml")
    ids = {t.id for t in config.topics}
    assert {
        "dprk-russia-military",
        "undersea-cable-sabotage",
        "red-sea-shipping-attacks",
        "taiwan-strait-military",
    } <= ids
    for topic in config.topics:
        assert topic.description and topic.destinations and 0 < topic.threshold < 1
        assert topic.examples.files or topic.examples.positive
    assert len(config.sources) >= 5 and all(s.url.startswith("https://") for s in config.sources)


def test_minimal_config_resolves_relative_paths_next_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.toml"
    path.parent.mkdir()
    path.write_text(MINIMAL)
    config = load_config(path)
    assert config.database_url() == f"sqlite:///{tmp_path / 'sub' / 'var' / 'test.sqlite'}"
    assert config.topics[0].title == "cables"


def test_a_typo_is_an_error_not_silence(tmp_path: Path) -> None:
    found = problems(MINIMAL.replace("threshold = 0.4", "treshold = 0.4"), tmp_path)
    assert found == [
        "topics[0].treshold (line 14): unknown key (a typo? check the spelling against config.toml's comments)"
    ]


def test_threshold_out_of_range_names_the_place_and_line(tmp_path: Path) -> None:
    found = problems(MINIMAL.replace("threshold = 0.4", "threshold = 1.5"), tmp_path)
    assert found == ["topics[0].threshold (line 14): must be between 0 and 1 (got 1.5)"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    raw = MINIMAL.replace("threshold = 0.4", "threshold = -1").replace('id = "cables"', 'id = "Cables!"')
    raw = raw.replace('destinations = ["console"]', 'destinations = ["email:me"]')
    found = problems(raw, tmp_path)
    assert len(found) == 3
    assert any(p.startswith("topics[0].id") and "not a slug" in p for p in found)
    assert any(p.startswith("topics[0].threshold") for p in found)
    assert any(p.startswith("topics[0].destinations") and "email:me" in p for p in found)


def test_bad_toml_gives_the_line(tmp_path: Path) -> None:
    found = problems(MINIMAL.replace('url = "http://127.0.0.1:9/feed.xml"', 'url = "http://x'), tmp_path)
    assert len(found) == 1 and "not valid TOML" in found[0] and "line 9" in found[0]


def test_bad_duration_and_unknown_section(tmp_path: Path) -> None:
    found = problems(
        MINIMAL + '\n[schedule]\npoll_interval = "3 parsecs"\n[slak]\ncommand = "/news"\n', tmp_path
    )
    assert any(p.startswith("schedule.poll_interval") and "not a duration" in p for p in found)
    assert any(p.startswith("slak") and "unknown key" in p for p in found)


def test_duplicate_topic_ids_are_refused(tmp_path: Path) -> None:
    block = MINIMAL[MINIMAL.index("[[topics]]") :]
    found = problems(MINIMAL + "\n" + block, tmp_path)
    assert any("'cables' is already used by topics[0]" in p for p in found)


def test_missing_and_malformed_example_files_are_named_with_the_line(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"title": "a", "text": "b", "label": 1}\nnot json\n')
    raw = MINIMAL.replace("examples = {", 'examples = { files = ["missing.jsonl", "bad.jsonl"],')
    found = problems(raw, tmp_path)
    assert any(p.startswith("topics[0].examples.files[0]") and "not found" in p for p in found)
    assert any(p.startswith("topics[0].examples.files[1]") and "line 2" in p for p in found)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert "file not found" in info.value.problems[0]


def test_parse_config_is_frozen(tmp_path: Path) -> None:
    config = parse_config(MINIMAL, tmp_path / "c.toml")
    with pytest.raises(ValueError):
        config.topics[0].threshold = 0.9  # type: ignore[misc]


def test_check_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text(MINIMAL)
    assert main(["check", "--config", str(good)]) == 0
    out = capsys.readouterr().out
    assert "cables" in out and "threshold 0.4" in out and "local" in out
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL.replace("threshold = 0.4", "threshold = 2"))
    with pytest.raises(SystemExit) as info:
        main(["check", "--config", str(bad)])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "topics[0].threshold (line 14): must be between 0 and 1 (got 2)" in err


def test_config_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "env.toml"
    path.write_text(MINIMAL)
    monkeypatch.setenv("WATCHFLOOR_CONFIG", str(path))
    assert load_config().topics[0].id == "cables"
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/db")
    assert load_config().database_url() == "postgresql+psycopg://u@h/db"


def test_teams_digests_and_surge_sections_are_checked(tmp_path: Path) -> None:
    base = (FIXTURES / "config" / "minimal.toml").read_text()
    good = base + '\n[[teams]]\nname = "ops"\nwebhook_env = "TEAMS_WEBHOOK_OPS"\n'
    config = parse_config(
        good.replace('destinations = ["console"]', 'destinations = ["teams:ops"]'), tmp_path / "c.toml"
    )
    assert config.teams_destination("ops") is not None
    bad = (
        base.replace('destinations = ["console"]', 'destinations = ["teams:nobody"]')
        + '\n[[teams]]\nname = "ops"\nwebhook_env = "https://secret.example/hook"\n'
        + '\n[[digests]]\ndestination = "console"\ncron = "0 25 * * *"\ntimezone = "Mars/Olympus"\n'
        + '\n[surge]\nwindow = "6h"\nbaseline = "12h"\n'
    )
    with pytest.raises(ConfigError) as exc:
        parse_config(bad, tmp_path / "c.toml")
    report = exc.value.report()
    assert "teams[0].webhook_env" in report and "not the URL itself" in report
    assert "digests[0].cron" in report and "is not a crontab schedule" in report
    assert "digests[0].timezone" in report and "'Mars/Olympus' is not a time zone" in report
    assert "surge: baseline must cover at least 4 windows" in report
    # The webhook URL given by mistake where the variable's name goes is not echoed back: it is a secret.
    assert "secret.example" not in report


def test_shipped_teams_example_validates_when_uncommented(tmp_path: Path) -> None:
    raw = (ROOT / "config.toml").read_text(encoding="utf-8")
    block = raw[raw.index("# [[teams]]") :].split("\n\n")[0]
    example = "\n".join(line.removeprefix("# ") for line in block.splitlines() if line.startswith("# "))
    base = (FIXTURES / "config" / "minimal.toml").read_text()
    config = parse_config(base + "\n" + example + "\n", tmp_path / "c.toml")
    assert [t.name for t in config.teams] == ["ops"]
