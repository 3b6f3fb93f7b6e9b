"""`config.toml`, validated once and frozen.

Every section owns its schema; unknown keys are errors, so a typo such as `treshold` is reported instead of
silently ignored. `load_config` returns a frozen `Config` or raises `ConfigError` whose `problems` each name
the place (`topics[2].threshold`) and say what to do. Secrets never live here: tokens and webhook URLs come
from the environment.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.durations import DurationError, parse_duration

CONFIG_ENV = "WATCHFLOOR_CONFIG"
DEFAULT_CONFIG = Path("config.toml")


def _duration(value: Any, allow_zero: bool = False) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A bare number is ambiguous; seconds is what most tools assume, but say so in the docs.
        return timedelta(seconds=float(value))
    if not isinstance(value, str):
        raise ValueError('write a duration such as "15m" or "6h"')
    try:
        return parse_duration(value, allow_zero)
    except DurationError as exc:
        raise ValueError(str(exc)) from None


Duration = Annotated[timedelta, BeforeValidator(_duration)]
# Jitter may be switched off with "0s"; every other duration must be positive.
OptionalDuration = Annotated[timedelta, BeforeValidator(lambda v: _duration(v, allow_zero=True))]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageConfig(Section):
    url: str = "sqlite:///var/watchfloor.sqlite"


class ScheduleConfig(Section):
    poll_interval: Duration = timedelta(minutes=15)
    jitter: OptionalDuration = timedelta(seconds=30)
    config_check: Duration = timedelta(seconds=2)
    delivery_interval: Duration = timedelta(seconds=5)


class FetchConfig(Section):
    timeout: Duration = timedelta(seconds=20)
    max_bytes: int = Field(default=5_000_000, ge=1024)
    max_redirects: int = Field(default=5, ge=0, le=20)
    concurrency: int = Field(default=64, ge=1, le=2000)
    per_host: int = Field(default=4, ge=1, le=100)
    max_backoff: Duration = timedelta(hours=6)
    parse_processes: int = Field(default=1, ge=0, le=64)


class StoriesConfig(Section):
    window: Duration = timedelta(days=7)
    similarity: float | None = Field(default=None, gt=0, le=1)


class ClassifierConfig(Section):
    background: list[str] = Field(default_factory=lambda: ["examples/background.jsonl"])
    model_dir: str = "var/models"


class SlackConfig(Section):
    command: str = "/news"
    admins: list[str] = Field(default_factory=list)
    # Flood control: past this many alerts per topic per channel in an hour, further stories wait and go
    # out together as one "N more stories on <topic>" message (at most one such message an hour).
    hourly_cap: int = Field(default=10, ge=1, le=1000)
    rollup_delay: Duration = timedelta(minutes=10)

    @field_validator("command")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not re.fullmatch(r"/[a-z0-9_-]{1,31}", value):
            raise ValueError('must be a slash command such as "/news" (lowercase letters, digits, - or _)')
        return value


class WebConfig(Section):
    # The address users reach `watchfloor serve` at; Teams feedback links point here. Without it, Teams
    # cards carry no Relevant / Not relevant links (Slack buttons need no URL).
    public_url: str | None = None
    # How long a Teams feedback link stays valid.
    feedback_link_ttl: Duration = timedelta(days=7)

    @field_validator("public_url")
    @classmethod
    def _public(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/") if value else value


def _crontab(value: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(
            f'{value!r} is not a crontab schedule ("minute hour day month day-of-week", e.g. '
            f'"0 8 * * mon-fri"): {exc}'
        ) from None
    return value


ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")


class TeamsDestination(Section):
    """A Teams channel reached through a Workflows webhook; the URL (a secret: it carries a signature) is
    read from the environment variable named here, never from this file."""

    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,80}$")
    webhook_env: str

    @field_validator("webhook_env")
    @classmethod
    def _env(cls, value: str) -> str:
        if "://" in value:  # the URL itself pasted here: never echo it, it carries a signature
            raise ValueError(
                "must name the environment variable that holds the webhook URL (like TEAMS_WEBHOOK_OPS), "
                "not the URL itself: the URL is a secret, keep it out of this file"
            )
        if not ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name (like TEAMS_WEBHOOK_OPS)")
        return value


class DigestConfig(Section):
    """A scheduled roll-up of the top stories per topic for one destination."""

    destination: str
    cron: str = "0 8 * * mon-fri"  # minute hour day month day-of-week, as crontab
    timezone: str = "UTC"
    topics: list[str] = Field(default_factory=list)  # empty: the topics routed to the destination
    per_topic: int = Field(default=5, ge=1, le=20)

    @field_validator("destination")
    @classmethod
    def _dest(cls, value: str) -> str:
        if not DESTINATION.match(value):
            raise ValueError(
                f'{value!r} is not a destination: write "slack:#channel", "slack:C0123ABCD", '
                '"teams:<name>" or "console"'
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone (write one like Europe/London or UTC)") from None
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _crontab(value)


class LearningConfig(Section):
    # Retrain a topic's model after this many new feedback labels (clicks) since its last training.
    # Retraining costs about a second; `watchfloor replay` on news_dev gained recall at 5 and nothing at 20.
    retrain_after: int = Field(default=5, ge=1, le=100_000)
    # And every night at this time (crontab, UTC), to fold in whatever feedback arrived.
    nightly: str = "30 3 * * *"
    # Models need this many positive examples before they may gate a topic; below, rules alone decide.
    min_positives: int = Field(default=5, ge=1)

    @field_validator("nightly")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _crontab(value)


# A topic needs this many windows of history before anything is unusual for it.
SURGE_MIN_HISTORY = 4


class SurgeConfig(Section):
    # A topic "surges" when its stories in `window` reach `factor` x its usual count for such a window
    # (the median over `baseline`), and at least `min_stories`. One surge message per topic per window.
    enabled: bool = True
    window: Duration = timedelta(hours=6)
    factor: float = Field(default=3.0, gt=1)
    min_stories: int = Field(default=5, ge=2)
    baseline: Duration = timedelta(days=14)

    @model_validator(mode="after")
    def _history(self) -> SurgeConfig:
        if self.baseline < self.window * SURGE_MIN_HISTORY:
            raise ValueError(
                f"baseline must cover at least {SURGE_MIN_HISTORY} windows (a usual rate needs history): "
                f"make it at least {SURGE_MIN_HISTORY} x window"
            )
        return self


class SourceConfig(Section):
    name: str = Field(min_length=1, max_length=80)
    url: str
    interval: Duration | None = None
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


class RulesConfig(Section):
    all: list[str] = Field(default_factory=list)
    any: list[str] = Field(default_factory=list)
    none: list[str] = Field(default_factory=list)

    @field_validator("all", "any", "none")
    @classmethod
    def _terms(cls, value: list[str]) -> list[str]:
        for term in value:
            if not term.strip() or any(not alt.strip() for alt in term.split("|")):
                raise ValueError(f"{term!r} has an empty term: write words, alternatives separated by |")
        return value


class ExamplesConfig(Section):
    files: list[str] = Field(default_factory=list)
    positive: list[str] = Field(default_factory=list)
    negative: list[str] = Field(default_factory=list)


DESTINATION = re.compile(r"^(console|slack:[#]?[A-Za-z0-9._-]{1,80}|teams:[A-Za-z0-9._-]{1,80})$")


class TopicConfig(Section):
    id: str
    name: str = ""
    description: str = Field(min_length=1)
    threshold: float = 0.5
    rules: RulesConfig = Field(default_factory=RulesConfig)
    examples: ExamplesConfig = Field(default_factory=ExamplesConfig)
    destinations: list[str] = Field(default_factory=lambda: ["console"])
    enabled: bool = True

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", value):
            raise ValueError(
                f'{value!r} is not a slug: use lowercase words joined by -, like "dprk-russia-military"'
            )
        return value

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool) and not 0 <= value <= 1:
            raise ValueError(f"must be between 0 and 1 (got {value})")
        return value

    @field_validator("destinations")
    @classmethod
    def _destinations(cls, value: list[str]) -> list[str]:
        for dest in value:
            if not DESTINATION.match(dest):
                raise ValueError(
                    f'{dest!r} is not a destination: write "slack:#channel", "slack:C0123ABCD", '
                    '"teams:<name>" or "console"'
                )
        return value

    @property
    def title(self) -> str:
        return self.name or self.id


class Config(Section):
    storage: StorageConfig = Field(default_factory=StorageConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    fetch: FetchConfig = Field(default_factory=FetchConfig)
    stories: StoriesConfig = Field(default_factory=StoriesConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    teams: list[TeamsDestination] = Field(default_factory=list)
    digests: list[DigestConfig] = Field(default_factory=list)
    learning: LearningConfig = Field(default_factory=LearningConfig)
    surge: SurgeConfig = Field(default_factory=SurgeConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    topics: list[TopicConfig] = Field(default_factory=list)
    # Where relative paths in the file (examples, models, SQLite) are resolved: the file's own folder.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _unique(self) -> Config:
        seen: dict[str, int] = {}
        for i, topic in enumerate(self.topics):
            if topic.id in seen:
                raise ValueError(f"topics[{i}].id {topic.id!r} is already used by topics[{seen[topic.id]}]")
            seen[topic.id] = i
        names: dict[str, int] = {}
        for i, source in enumerate(self.sources):
            if source.name in names:
                raise ValueError(
                    f"sources[{i}].name {source.name!r} is already used by sources[{names[source.name]}]"
                )
            names[source.name] = i
        teams = {t.name for t in self.teams}
        for i, topic in enumerate(self.topics):
            for dest in topic.destinations:
                if dest.startswith("teams:") and dest[6:] not in teams:
                    raise ValueError(
                        f"topics[{i}].destinations: {dest!r} names no Teams destination: add "
                        f'[[teams]] name = "{dest[6:]}" with its webhook_env'
                    )
        topic_ids = {t.id for t in self.topics}
        for i, digest in enumerate(self.digests):
            if digest.destination.startswith("teams:") and digest.destination[6:] not in teams:
                raise ValueError(
                    f"digests[{i}].destination: {digest.destination!r} names no Teams destination"
                )
            for tid in digest.topics:
                if tid not in topic_ids:
                    raise ValueError(f"digests[{i}].topics: {tid!r} is not a topic id")
        return self

    def teams_destination(self, name: str) -> TeamsDestination | None:
        return next((t for t in self.teams if t.name == name), None)

    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.base_dir / p

    def topic(self, topic_id: str) -> TopicConfig | None:
        return next((t for t in self.topics if t.id == topic_id), None)

    @property
    def active_topics(self) -> list[TopicConfig]:
        return [t for t in self.topics if t.enabled]

    def database_url(self) -> str:
        """DATABASE_URL wins (Heroku-style platforms set it); relative SQLite paths follow the config file."""
        url = os.environ.get("DATABASE_URL") or self.storage.url
        if url.startswith("postgres://"):  # Heroku still hands out the scheme SQLAlchemy 2 dropped
            url = "postgresql+psycopg://" + url[len("postgres://") :]
        elif url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            url = prefix + str(self.path(url[len(prefix) :]))
        return url

    def interval(self, source: SourceConfig) -> timedelta:
        return source.interval or self.schedule.poll_interval


class ConfigError(Exception):
    """A config that cannot run. `problems` lists every finding, each naming its place."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__(f"{path}: " + "; ".join(self.problems))

    def report(self) -> str:
        lines = [f"{self.path}: {len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


def config_path(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-after", "function-before", "function-wrap")):
            continue
        else:
            out += ("." if out else "") + part
    return out


def _message(error: Any) -> str:
    kind = error["type"]
    msg = str(error["msg"])
    if kind == "extra_forbidden":
        return "unknown key (a typo? check the spelling against config.toml's comments)"
    if kind == "missing":
        return "is required"
    msg = re.sub(r"^Value error, ", "", msg)
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        msg = f"{msg} (got {error.get('input')!r})"
    return msg


def _line_of(raw: str, loc: tuple[int | str, ...]) -> int | None:
    """Best-effort line number of a location, so users can jump to it; TOML parsers do not keep positions."""
    lines = raw.splitlines()
    start = 0
    if loc and isinstance(loc[0], str) and len(loc) > 1 and isinstance(loc[1], int):
        header = re.compile(rf"^\s*\[\[\s*{re.escape(loc[0])}\s*\]\]")
        seen = -1
        for n, line in enumerate(lines):
            if header.match(line):
                seen += 1
                if seen == loc[1]:
                    start = n
                    break
        else:
            return None
        key = next((p for p in loc[2:] if isinstance(p, str)), None)
    else:
        key = next((p for p in reversed(loc) if isinstance(p, str)), None)
        if loc and isinstance(loc[0], str) and len(loc) > 1:
            section = re.compile(rf"^\s*\[\s*{re.escape(loc[0])}\s*\]")
            start = next((n for n, line in enumerate(lines) if section.match(line)), 0)
            key = loc[1] if isinstance(loc[1], str) else key
    if key is None:
        return start + 1
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=|[{{,]\s*{re.escape(key)}\s*=")
    for n in range(start, len(lines)):
        if n > start and re.match(r"^\s*\[", lines[n]):
            break
        if pattern.search(lines[n]):
            return n + 1
    return start + 1 if start else None


def parse_config(raw: str, path: Path) -> Config:
    """Validate TOML text; raise ConfigError listing every problem with its place."""
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None
    try:
        config = Config.model_validate({**data, "base_dir": path.parent.resolve()})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            where = _location(loc) or "(top level)"
            line = _line_of(raw, loc)
            at = f" (line {line})" if line else ""
            problems.append(f"{where}{at}: {_message(error)}")
        raise ConfigError(path, problems) from None
    problems = _check_files(config)
    if problems:
        raise ConfigError(path, problems)
    return config


def _check_files(config: Config) -> list[str]:
    """Files the config names must exist and parse, or the topic would silently train on nothing."""
    from classifiers.training import ExamplesError, load_background, load_examples

    problems = []
    for i, background in enumerate(config.classifier.background):
        p = config.path(background)
        if not p.is_file():
            problems.append(f"classifier.background[{i}]: file {background!r} not found (looked in {p})")
            continue
        try:
            load_background(p)
        except ExamplesError as exc:
            problems.append(f"classifier.background[{i}]: {exc}")
    for i, topic in enumerate(config.topics):
        for j, name in enumerate(topic.examples.files):
            p = config.path(name)
            if not p.is_file():
                problems.append(f"topics[{i}].examples.files[{j}]: file {name!r} not found (looked in {p})")
                continue
            try:
                load_examples(p, topic.id)
            except ExamplesError as exc:
                problems.append(f"topics[{i}].examples.files[{j}]: {exc}")
    return problems


def load_config(path: str | Path | None = None) -> Config:
    p = config_path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            p, [f"file not found (set --config or {CONFIG_ENV}, or run from the project folder)"]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(p, [f"cannot read: {exc}"]) from None
    return parse_config(raw, p)
