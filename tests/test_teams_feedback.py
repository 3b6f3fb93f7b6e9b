"""Feedback from Teams: HMAC-signed, expiring links, and the `/feedback/<token>` page of `watchfloor serve`.

The token tests are pure (explicit `now`). The end-to-end tests run the real ASGI app under uvicorn on
127.0.0.1 (with the Slack app beside Teams, Bolt pointed at the fake Slack; tests/test_serve.py runs Teams
alone) and open the links a rendered card carries, with httpx: valid (GET shows, POST records), tampered,
expired, replayed.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fakes.slack_api import FakeSlack

from bot.app import Deps
from bot.config import Config
from bot.decide import decide_alerts
from bot.dedup import item_keys, new_items
from bot.feedback_links import (
    ExpiredLink,
    LinkClaim,
    LinkSetupError,
    TamperedLink,
    UnknownLinkAlert,
    feedback_links,
    link_secret,
    make_token,
    read_token,
    record_link_verdict,
    teams_user,
    token_of_path,
)
from bot.items import Item, ScoredItem, TopicScore, Why
from bot.render.teams import alert_card
from bot.store import Store
from bot.web import create_asgi

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SECRET = b"test-link-secret-0123456789abcdef"
TTL = timedelta(days=7)
TOPIC = "dprk-russia-military"


def claim(**overrides: Any) -> LinkClaim:
    values: dict[str, Any] = {
        "alert_id": "a1b2c3d4e5f6a7b8c9d0e1f2",
        "verdict": "relevant",
        "destination": "ops",
        "expires": NOW + TTL,
    }
    values.update(overrides)
    return LinkClaim(**values)


# -- tokens -------------------------------------------------------------------------------------------------


def test_a_token_round_trips_until_it_expires() -> None:
    token = make_token(SECRET, claim())
    assert read_token(SECRET, token, NOW) == claim()
    assert read_token(SECRET, token, NOW + TTL - timedelta(seconds=1)) == claim()
    with pytest.raises(ExpiredLink):
        read_token(SECRET, token, NOW + TTL)
    assert len(token) < 120 and set(token) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    )


def flipped(token: str, index: int) -> str:
    swap = "A" if token[index] != "A" else "B"
    return token[:index] + swap + token[index + 1 :]


def test_every_change_to_a_token_is_tampering() -> None:
    token = make_token(SECRET, claim())
    payload, mac = token.split(".")
    forged_payload = (
        base64.urlsafe_b64encode(
            b"a1b2c3d4e5f6a7b8c9d0e1f2\nn\nops\n" + str(int((NOW + TTL).timestamp())).encode()
        )
        .decode()
        .rstrip("=")
    )
    later = (
        base64.urlsafe_b64encode(
            b"a1b2c3d4e5f6a7b8c9d0e1f2\nr\nops\n" + str(int((NOW + 1000 * TTL).timestamp())).encode()
        )
        .decode()
        .rstrip("=")
    )
    bad = [
        *(flipped(token, i) for i in range(0, len(token), 7) if token[i] != "."),
        f"{forged_payload}.{mac}",  # the verdict turned round
        f"{later}.{mac}",  # the expiry pushed out
        f"{payload}.",
        f".{mac}",
        payload,
        f"{token}.x",
        token[:-2],
        token + "A",
        "",
        "x" * 1000,
        f"{payload}.{mac}=",
        make_token(b"another-secret-of-enough-length!", claim()),
    ]
    for candidate in bad:
        with pytest.raises(TamperedLink):
            read_token(SECRET, candidate, NOW)


def test_the_secret_comes_from_the_environment_with_a_clear_error() -> None:
    assert (
        link_secret({"WATCHFLOOR_LINK_SECRET": "  s3cr3t-long-enough-value  "}) == b"s3cr3t-long-enough-value"
    )
    with pytest.raises(LinkSetupError, match="WATCHFLOOR_LINK_SECRET is not set"):
        link_secret({})
    with pytest.raises(LinkSetupError, match="at least 16"):
        link_secret({"WATCHFLOOR_LINK_SECRET": "short"})


def test_links_and_paths() -> None:
    links = feedback_links("https://wf.example/base/", SECRET, "a1", "ops", NOW, TTL)
    assert links.relevant.startswith("https://wf.example/base/feedback/")
    token = token_of_path(links.relevant.removeprefix("https://wf.example/base"))
    assert token is not None and read_token(SECRET, token, NOW).verdict == "relevant"
    not_relevant = token_of_path(links.not_relevant.removeprefix("https://wf.example/base"))
    assert not_relevant is not None and read_token(SECRET, not_relevant, NOW).verdict == "not_relevant"
    assert token_of_path("/feedback/") is None and token_of_path("/feedback/a/b") is None
    assert token_of_path("/other/x") is None


def test_teams_user_fits_the_feedback_column() -> None:
    assert teams_user("ops") == "teams:ops"
    long_a, long_b = "a" * 60 + "-one", "a" * 60 + "-two"
    assert len(teams_user(long_a)) == 40 and teams_user(long_a) != teams_user(long_b)


# -- recording, on SQLite and PostgreSQL --------------------------------------------------------------------


def add_alert(store: Store, destination: str = "teams:ops", title: str = "Shells reach the front") -> str:
    item = Item("i1", "https://news.example/1", title, "Text.", NOW, "wire")
    why = Why(terms=(("shells", 0.9),), rules_matched=())
    scored = ScoredItem(item, item.id, (TopicScore(TOPIC, 0.9, True, why),), "Summary.")
    _, keys = new_items([item], {}, [item_keys(item)])
    with store.transaction() as conn:
        [alert] = decide_alerts([scored], {TOPIC: [destination]}, set(), NOW)
        store.save_scored(conn, [scored], keys, {}, [alert])
    return alert.id


def test_recording_is_one_row_per_destination_and_replays_are_idempotent(store: Store) -> None:
    name = "desk-" + "x" * 70  # a long [[teams]] name still fits the 40-character user column
    alert_id = add_alert(store, f"teams:{name}")
    c = claim(alert_id=alert_id, destination=name)
    shown = record_link_verdict(store, c, NOW, confirm=False)
    assert not shown.recorded and store.feedback_for_alert(alert_id) == {}
    first = record_link_verdict(store, c, NOW, confirm=True)
    again = record_link_verdict(store, c, NOW + timedelta(minutes=1), confirm=True)
    assert (first.already, again.already) == (False, True)
    assert store.feedback_for_alert(alert_id) == {teams_user(name): "relevant"}
    record_link_verdict(
        store, claim(alert_id=alert_id, destination=name, verdict="not_relevant"), NOW, confirm=True
    )
    assert store.feedback_for_alert(alert_id) == {teams_user(name): "not_relevant"}  # the latest counts
    with pytest.raises(UnknownLinkAlert):
        record_link_verdict(store, claim(alert_id="f" * 24), NOW, confirm=True)
    with pytest.raises(TamperedLink):  # a genuine alert, but sent elsewhere
        record_link_verdict(store, claim(alert_id=alert_id, destination="other"), NOW, confirm=True)


# -- end to end through `watchfloor serve` ------------------------------------------------------------------


@dataclass
class Serve:
    url: str
    store: Store
    clock: list[datetime]


@contextmanager
def serving(config: Config, deps: Deps, slack: FakeSlack) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SLACK_BOT_TOKEN", "xoxb-test")
        env.setenv("SLACK_SIGNING_SECRET", "test-signing-secret")
        env.setenv("SLACK_API_URL", slack.base_url)
        env.setenv("WATCHFLOOR_LINK_SECRET", SECRET.decode())
        server = uvicorn.Server(
            uvicorn.Config(
                create_asgi(config, deps), host="127.0.0.1", port=0, lifespan="on", log_level="warning"
            )
        )
        thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    config = Config.model_validate(
        {
            "web": {"public_url": "https://watchfloor.example"},
            "teams": [{"name": "ops", "webhook_env": "TEAMS_WEBHOOK_OPS"}],
            "topics": [
                {
                    "id": TOPIC,
                    "name": "DPRK–Russia <military>",
                    "description": "d",
                    "destinations": ["teams:ops"],
                }
            ],
        }
    )
    store = Store.open(f"sqlite:///{tmp_path / 'serve.sqlite'}")
    clock = [NOW]
    deps = Deps(store=store, config=lambda: config, clock=lambda: clock[0])
    with FakeSlack() as slack, serving(config, deps, slack) as url:
        yield Serve(url, store, clock)
    store.close()


def card_links(srv: Serve, alert_id: str) -> dict[str, str]:
    """The feedback URLs a rendered card carries, pointed at the test server instead of public_url."""
    [stored] = [a for a in srv.store.alerts_for() if a.alert.id == alert_id]
    links = feedback_links("https://watchfloor.example", SECRET, alert_id, "ops", srv.clock[0], TTL)
    card = alert_card(stored, "DPRK", feedback=links)["attachments"][0]["content"]
    return {
        a["title"]: a["url"].replace("https://watchfloor.example", srv.url)
        for a in card["actions"]
        if a["title"] != "Open"
    }


def test_valid_link_shows_then_records_on_post_and_a_replay_says_already_recorded(serve: Serve) -> None:
    alert_id = add_alert(serve.store, title="<script>alert(1)</script> Shells")
    url = card_links(serve, alert_id)["Not relevant"]

    shown = httpx.get(url)
    assert shown.status_code == 200 and '<form method="post">' in shown.text
    assert "&lt;script&gt;" in shown.text and "<script>" not in shown.text  # escaped
    assert "DPRK–Russia &lt;military&gt;" in shown.text
    assert shown.headers["cache-control"] == "no-store" and shown.headers["referrer-policy"] == "no-referrer"
    assert httpx.head(url).status_code == 200
    assert serve.store.feedback_for_alert(alert_id) == {}  # previewers' GETs record nothing

    done = httpx.post(url)
    assert done.status_code == 200 and "Recorded: not relevant" in done.text
    assert serve.store.feedback_for_alert(alert_id) == {"teams:ops": "not_relevant"}

    serve.clock[0] += timedelta(hours=1)
    replay = httpx.post(url)
    assert replay.status_code == 200 and "Already recorded" in replay.text
    assert "already marked it not relevant" in httpx.get(url).text
    assert serve.store.feedback_for_alert(alert_id) == {"teams:ops": "not_relevant"}  # one row
    relevant = httpx.post(card_links(serve, alert_id)["Relevant"])
    assert "Recorded: relevant" in relevant.text
    assert serve.store.feedback_for_alert(alert_id) == {"teams:ops": "relevant"}


def test_tampered_and_expired_links_get_403_and_record_nothing(serve: Serve) -> None:
    alert_id = add_alert(serve.store)
    url = card_links(serve, alert_id)["Relevant"]
    base, token = url.rsplit("/", 1)
    payload, mac = token.split(".")
    tampered = [f"{base}/{flipped(token, 3)}", f"{base}/{payload}.{flipped(mac, 5)}", f"{base}/{payload}.x"]
    for bad in tampered:
        for method in ("GET", "POST"):
            answer = httpx.request(method, bad)
            assert answer.status_code == 403, (method, bad)
            assert "damaged or was not made by Watchfloor" in answer.text
    serve.clock[0] = NOW + TTL
    for method in ("GET", "POST"):
        expired = httpx.request(method, url)
        assert expired.status_code == 403 and "expired" in expired.text
    assert serve.store.feedback_for_alert(alert_id) == {}


def test_a_genuine_link_to_an_alert_no_longer_stored_is_404(serve: Serve) -> None:
    links = feedback_links(serve.url, SECRET, "f" * 24, "ops", NOW, TTL)
    assert httpx.post(links.relevant).status_code == 404
    assert httpx.get(f"{serve.url}/feedback/").status_code == 404  # no token: not this route


def test_without_the_secret_the_page_says_so(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    alert_id = add_alert(serve.store)
    url = card_links(serve, alert_id)["Relevant"]
    monkeypatch.delenv("WATCHFLOOR_LINK_SECRET")
    answer = httpx.post(url)
    assert answer.status_code == 503 and "WATCHFLOOR_LINK_SECRET" in answer.text
    assert serve.store.feedback_for_alert(alert_id) == {}
