"""The alert buttons through real HTTP: alerts delivered to the fake Slack by the real outbox, then signed
`block_actions` clicks (`payload=<JSON>`, as Slack sends them) to `watchfloor serve`'s ASGI app under
uvicorn; the message updates and the ephemeral answers are read back from the fake.

A server and a store per test: every test here writes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fakes.slack_api import FakeSlack
from news_store import DPRK, NOW, REQUESTS, fill, news_config
from slack_http import serving, signed_headers

from bot.app import Deps
from bot.delivery.slack import SlackDelivery, slack_client
from bot.render.slack import ACTION_MUTE_24H, ACTION_NOT_RELEVANT, ACTION_RELEVANT
from bot.store import Mute, Store, StoredAlert

ANA, BO = "U0ANA00001", "U0BO000002"
DPRK_TITLE = "DPRK–Russia military cooperation"


class Clock:
    """NOW, a second later at every reading: clicks are ordered as they happen."""

    def __init__(self) -> None:
        self.ticks = 0

    def __call__(self) -> datetime:
        self.ticks += 1
        return NOW + timedelta(seconds=self.ticks)


@dataclass
class Server:
    url: str
    slack: FakeSlack
    store: Store


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    config = news_config()
    titles = {t.id: t.title for t in config.topics}
    store = Store.open(f"sqlite:///{tmp_path / 'news.sqlite'}")
    fill(store, config)
    deps = Deps(store=store, config=lambda: config, clock=Clock())
    with FakeSlack() as slack:
        # The alerts reach the fake Slack the way they reach Slack: through the outbox.
        delivery = SlackDelivery(
            client=slack_client("xoxb-test", slack.base_url),
            store=store,
            topic_title=lambda t: titles.get(t, t),
            clock=lambda: NOW,
            pace_seconds=0,
        )
        assert asyncio.run(delivery.deliver_due()).sent == 3
        with serving(config, deps, slack) as url:
            yield Server(url, slack, store)
    store.close()


# -- clicks -------------------------------------------------------------------------------------------------


def sent_alert(srv: Server, item_id: str) -> StoredAlert:
    [stored] = [a for a in srv.store.alerts_for("sent") if a.alert.item_id == item_id]
    return stored


def message_of(srv: Server, stored: StoredAlert) -> dict[str, Any]:
    channel, _, ts = (stored.remote_ref or "").partition(":")
    [message] = [m for m in srv.slack.messages[channel] if m["ts"] == ts]
    return message


def button_value(message: dict[str, Any], action_id: str) -> str:
    """The value Slack sends back: the one on the posted message's button."""
    for block in message["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button on the message")


def click_body(
    srv: Server, stored: StoredAlert, action_id: str, user: str, ident: str, value: str | None
) -> str:
    channel, _, ts = (stored.remote_ref or "").partition(":")
    payload = json.loads((REQUESTS / "block_actions.json").read_text())
    payload["user"].update(id=user, username=user.lower(), name=user.lower())
    payload["container"].update(channel_id=channel, message_ts=ts)
    payload["channel"]["id"] = channel
    payload["message"].update(message_of(srv, stored))
    payload["response_url"] = srv.slack.response_url(ident)
    [action] = payload["actions"]
    action.update(
        action_id=action_id,
        value=button_value(message_of(srv, stored), action_id) if value is None else value,
    )
    return urlencode({"payload": json.dumps(payload)})


def click(
    srv: Server, stored: StoredAlert, action_id: str, user: str = ANA, *, value: str | None = None
) -> dict[str, Any]:
    """Click a button signed, as Slack does; the HTTP answer is the bare ack. Return the ephemeral answer."""
    ident = uuid.uuid4().hex[:12]
    body = click_body(srv, stored, action_id, user, ident, value)
    answer = httpx.post(f"{srv.url}/slack/events", content=body, headers=signed_headers(body), timeout=30)
    assert answer.status_code == 200, answer.text
    assert not answer.content.strip()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for got, reply in list(srv.slack.responses):
            if got == ident:
                return reply
        time.sleep(0.01)
    raise AssertionError(f"no answer at response_url {ident}")


def feedback_line(message: dict[str, Any]) -> str:
    last = message["blocks"][-1]
    assert last["type"] == "context", "the feedback line is the last block"
    return str(last["elements"][0]["text"])


# -- tests --------------------------------------------------------------------------------------------------


def test_the_latest_click_of_a_user_counts_and_the_message_shows_it(server: Server) -> None:
    stored = sent_alert(server, "i-dprk-shells")
    reply = click(server, stored, ACTION_RELEVANT)
    assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
    assert reply["text"].startswith(f"Marked relevant: this teaches *{DPRK_TITLE}*")
    message = message_of(server, stored)
    assert "edited" in message and feedback_line(message) == f"Relevant — <@{ANA}>"

    reply = click(server, stored, ACTION_NOT_RELEVANT)
    assert reply["text"].startswith(f"Marked not relevant: this teaches *{DPRK_TITLE}*")
    assert server.store.feedback_for_alert(stored.alert.id) == {ANA: "not_relevant"}
    message = message_of(server, stored)
    assert feedback_line(message) == f"Not relevant — <@{ANA}>"
    # Re-rendered whole: title, buttons and the metadata that finds the message again are all kept.
    assert "North Korean artillery shells reach Russian front" in json.dumps(message["blocks"])
    assert button_value(message, ACTION_MUTE_24H) == button_value(message, ACTION_RELEVANT)
    assert message["metadata"]["event_payload"]["alert_id"] == stored.alert.id
    assert len(server.slack.calls_to("chat.update")) == 2
    assert [f.item_id for f in server.store.feedback_labels(DPRK)] == ["i-dprk-shells"]
    assert server.store.feedback_labels(DPRK)[0].label == 0


def test_two_users_disagree_both_are_shown_and_the_tie_is_reported(server: Server) -> None:
    stored = sent_alert(server, "i-dprk-old")
    click(server, stored, ACTION_RELEVANT, ANA)
    click(server, stored, ACTION_NOT_RELEVANT, BO)
    assert feedback_line(message_of(server, stored)) == f"Relevant — <@{ANA}> · Not relevant — <@{BO}>"
    assert server.store.feedback_labels(DPRK) == []
    [tie] = server.store.feedback_ties(DPRK)
    assert tie.item_id == "i-dprk-old" and (tie.tally.relevant, tie.tally.not_relevant) == (1, 1)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "This button could not be read: the button carries no value"),
        ("{not json", "This button could not be read: the button's value is not the JSON"),
        ('{"alert_id": "gone0000", "topic": "dprk-russia-military"}', "This alert is no longer stored"),
        ('{"alert_id": "ALERT", "topic": "undersea-cable-sabotage"}', "does not belong to the alert"),
        ('{"alert_id": "OTHER", "topic": "dprk-russia-military"}', "does not belong to the alert"),
    ],
)
def test_a_bad_or_tampered_button_gets_an_explanation_not_a_trace(
    server: Server, value: str, why: str
) -> None:
    stored = sent_alert(server, "i-dprk-shells")
    other = sent_alert(server, "i-hostile")
    value = value.replace("ALERT", stored.alert.id).replace("OTHER", other.alert.id)
    reply = click(server, stored, ACTION_NOT_RELEVANT, value=value)
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith(":warning: ") and why in reply["text"]
    assert "Traceback" not in reply["text"]
    assert server.store.feedback_for_alert(stored.alert.id) == {}
    assert server.store.feedback_for_alert(other.alert.id) == {}
    assert server.slack.calls_to("chat.update") == []


def test_an_unexpected_failure_is_logged_with_an_id_not_a_trace(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("database exploded at /secret/path")

    monkeypatch.setattr(server.store, "record_feedback", broken)
    reply = click(server, sent_alert(server, "i-dprk-shells"), ACTION_RELEVANT)
    assert "Something went wrong, logged as `" in reply["text"] and "secret" not in reply["text"]
    incident = reply["text"].split("logged as `")[1].split("`")[0]
    assert any(incident in r.getMessage() for r in caplog.records)


def test_mute_button_mutes_the_topic_in_that_channel_for_24_hours(server: Server) -> None:
    stored = sent_alert(server, "i-hostile")
    reply = click(server, stored, ACTION_MUTE_24H, BO)
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith(f":mute: Muted *{DPRK_TITLE}* in this channel until <!date^")
    assert f"by <@{BO}>" in reply["text"] and f"`/news unmute {DPRK}`" in reply["text"]
    [mute] = server.store.active_mutes(NOW)
    assert mute == Mute(DPRK, "slack:#dprk-watch", mute.until, BO)
    assert timedelta(hours=24) <= mute.until - NOW <= timedelta(hours=24, minutes=1)
    assert server.store.active_mutes(mute.until) == []


def test_unsigned_click_is_refused(server: Server) -> None:
    stored = sent_alert(server, "i-dprk-shells")
    body = click_body(server, stored, ACTION_RELEVANT, ANA, "refused", None)
    answer = httpx.post(
        f"{server.url}/slack/events",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    stale = httpx.post(
        f"{server.url}/slack/events", content=body, headers=signed_headers(body, int(time.time()) - 6 * 60)
    )
    assert (answer.status_code, stale.status_code) == (401, 401)
    assert server.store.feedback_for_alert(stored.alert.id) == {}
