"""The fake Slack Web API, driven by the real slack_sdk clients (sync and async), so that later tests can
trust it: what it accepts, what it refuses, and the faults it injects look to slack_sdk as Slack's would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from fakes.slack_api import BOT_USER_ID, FakeSlack
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook import WebhookClient

METADATA = {"event_type": "watchfloor_alert", "event_payload": {"alert_id": "a1", "topic": "t", "story": "s"}}
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}


@pytest.fixture(scope="module")
def slack_server() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        yield slack


@pytest.fixture
def slack(slack_server: FakeSlack) -> FakeSlack:
    slack_server.reset()
    return slack_server


@pytest.fixture
def client(slack: FakeSlack) -> WebClient:
    return WebClient(token="xoxb-test", base_url=slack.base_url)


@pytest.fixture
def aclient(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=slack.base_url)


def error_of(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        call()
    return info.value


# ---- the happy paths ------------------------------------------------------------------------------------


def test_base_url_is_what_slack_sdk_takes(slack: FakeSlack) -> None:
    assert slack.base_url.startswith("http://127.0.0.1:") and slack.base_url.endswith("/api/")


def test_auth_test(client: WebClient) -> None:
    answer = client.auth_test()
    assert answer["ok"] and answer["user_id"] == BOT_USER_ID and answer["bot_id"]


async def test_post_update_and_history_with_metadata(slack: FakeSlack, aclient: AsyncWebClient) -> None:
    first = await aclient.chat_postMessage(channel="C1", text="first", blocks=[SECTION], metadata=METADATA)
    second = await aclient.chat_postMessage(channel="C1", text="second")
    assert first["ok"] and float(second["ts"]) > float(first["ts"])

    updated = await aclient.chat_update(channel="C1", ts=first["ts"], text="first, edited")
    assert updated["ok"] and updated["message"]["text"] == "first, edited"

    with_metadata = await aclient.conversations_history(channel="C1", include_all_metadata=True)
    assert [m["text"] for m in with_metadata["messages"]] == ["second", "first, edited"]  # newest first
    assert with_metadata["messages"][1]["metadata"] == METADATA  # kept through an update without it
    without = await aclient.conversations_history(channel="C1")
    assert all("metadata" not in m for m in without["messages"])

    assert [name for name, _ in slack.calls] == [
        "chat.postMessage",
        "chat.postMessage",
        "chat.update",
        "conversations.history",
        "conversations.history",
    ]
    assert slack.calls[0][1]["metadata"] == METADATA
    assert slack.messages["C1"][0]["metadata"] == METADATA


def test_history_oldest_limit_and_cursor(client: WebClient) -> None:
    ts = [client.chat_postMessage(channel="C2", text=f"m{i}")["ts"] for i in range(5)]
    newer = client.conversations_history(channel="C2", oldest=ts[2])
    assert [m["text"] for m in newer["messages"]] == ["m4", "m3"]  # `oldest` is exclusive
    page = client.conversations_history(channel="C2", limit=2)
    assert [m["text"] for m in page["messages"]] == ["m4", "m3"] and page["has_more"]
    rest = client.conversations_history(
        channel="C2", limit=10, cursor=page["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in rest["messages"]] == ["m2", "m1", "m0"] and not rest["has_more"]


def test_threads_stay_out_of_history_and_come_back_in_replies(slack: FakeSlack, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C3", text="parent", metadata=METADATA)["ts"]
    reply = client.chat_postMessage(channel="C3", text="reply", thread_ts=parent)["ts"]
    history = client.conversations_history(channel="C3")["messages"]
    assert [m["text"] for m in history] == ["parent"] and history[0]["reply_count"] == 1
    replies = client.conversations_replies(channel="C3", ts=parent, include_all_metadata=True)["messages"]
    assert [(m["text"], m["thread_ts"]) for m in replies] == [("parent", parent), ("reply", parent)]
    assert replies[0]["metadata"] == METADATA
    assert slack.thread("C3", parent)[0]["ts"] == reply
    assert [m["text"] for m in slack.top_level("C3")] == ["parent"]
    assert error_of(lambda: client.chat_postMessage(channel="C3", text="x", thread_ts="1.2")).response[
        "error"
    ] == ("message_not_found")


def test_form_encoded_calls_are_understood(slack: FakeSlack, client: WebClient) -> None:
    answer = client.api_call(
        "chat.postMessage",
        data={
            "channel": "C4",
            "text": "form",
            "blocks": json.dumps([SECTION]),
            "metadata": json.dumps(METADATA),
        },
    )
    assert answer["ok"]
    assert slack.messages["C4"][0]["blocks"] == [SECTION]
    assert slack.messages["C4"][0]["metadata"] == METADATA


def test_ephemeral_home_view_and_users(slack: FakeSlack, client: WebClient) -> None:
    assert client.chat_postEphemeral(channel="C5", user="U0ANA", text="only you")["ok"]
    assert slack.ephemeral[0]["user"] == "U0ANA" and "C5" not in slack.messages

    view = {"type": "home", "blocks": [SECTION]}
    assert client.views_publish(user_id="U0ANA", view=view)["ok"]
    assert slack.home_views["U0ANA"] == view
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "x"}, "blocks": [SECTION]}
    assert error_of(lambda: client.views_publish(user_id="U0ANA", view=modal)).response["error"] == (
        "invalid_arguments"
    )

    slack.users["U0ANA"] = {"name": "ana", "profile": {"display_name": "ana"}}
    assert client.users_info(user="U0ANA")["user"]["name"] == "ana"
    assert client.users_info(user="U0BO")["user"]["id"] == "U0BO"


def test_response_url_posts_are_recorded(slack: FakeSlack) -> None:
    answer = WebhookClient(slack.response_url("cmd-1")).send(text="done", response_type="ephemeral")
    assert answer.status_code == 200
    assert slack.responses == [("cmd-1", {"text": "done", "response_type": "ephemeral"})]


def test_reset_forgets_everything(slack: FakeSlack, client: WebClient) -> None:
    client.chat_postMessage(channel="C6", text="x")
    slack.fail_next("auth.test", 500)
    slack.reset()
    assert slack.calls == [] and slack.messages == {}
    assert client.auth_test()["ok"]


# ---- refusals -------------------------------------------------------------------------------------------


def test_unauthenticated_calls_are_refused(slack: FakeSlack) -> None:
    anonymous = WebClient(base_url=slack.base_url)
    assert error_of(anonymous.auth_test).response["error"] == "not_authed"
    assert (
        error_of(lambda: anonymous.chat_postMessage(channel="C1", text="x")).response["error"] == "not_authed"
    )
    assert "C1" not in slack.messages


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"blocks": [SECTION] * 51}, "invalid_blocks"),
        ({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]}, "invalid_blocks"),
        (
            {"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]},
            "invalid_blocks",
        ),
        (
            {"blocks": [{"type": "context", "elements": [{"type": "mrkdwn", "text": "x" * 2001}]}]},
            "invalid_blocks",
        ),
        ({"blocks": [{"type": "no_such_block"}]}, "invalid_blocks"),
        (
            {
                "blocks": [
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "text": {"type": "plain_text", "text": "x" * 76},
                                "action_id": "a",
                            }
                        ],
                    }
                ]
            },
            "invalid_blocks",
        ),
        ({"text": "x" * 40_001}, "msg_too_long"),
        ({"text": ""}, "no_text"),
        ({"text": "x", "metadata": {"event_payload": {}}}, "invalid_metadata_format"),
        (
            {"text": "x", "metadata": {"event_type": "t", "event_payload": "not an object"}},
            "invalid_metadata_format",
        ),
    ],
)
def test_invalid_messages_are_rejected(
    slack: FakeSlack, client: WebClient, kwargs: dict[str, Any], error: str
) -> None:
    rejected = error_of(lambda: client.chat_postMessage(channel="C1", **{"text": "fallback", **kwargs}))
    assert rejected.response.status_code == 200 and rejected.response["error"] == error
    assert "C1" not in slack.messages
    assert slack.calls_to("chat.postMessage")  # refused calls are recorded too


def test_update_of_an_unknown_message_is_refused(client: WebClient) -> None:
    assert error_of(lambda: client.chat_update(channel="C1", ts="1.000001", text="x")).response["error"] == (
        "message_not_found"
    )


# ---- injected faults --------------------------------------------------------------------------------------


async def test_429_carries_retry_after(slack: FakeSlack, aclient: AsyncWebClient) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as info:
        await aclient.chat_postMessage(channel="C1", text="x")
    assert info.value.response.status_code == 429
    assert info.value.response.headers["Retry-After"] == "7"
    assert info.value.response["error"] == "ratelimited"
    assert (await aclient.chat_postMessage(channel="C1", text="x"))["ok"]  # only the next call failed
    assert len(slack.messages["C1"]) == 1


def test_429_with_the_sync_client(slack: FakeSlack, client: WebClient) -> None:
    slack.fail_next("chat.postMessage", 429)
    response = error_of(lambda: client.chat_postMessage(channel="C1", text="x")).response
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"


async def test_500_and_error_answers(slack: FakeSlack, aclient: AsyncWebClient) -> None:
    slack.fail_next("chat.postMessage", 500, times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as info:
            await aclient.chat_postMessage(channel="C1", text="x")
        assert info.value.response.status_code == 500
    slack.fail_next("chat.update", error="channel_not_found")
    with pytest.raises(SlackApiError) as info:
        await aclient.chat_update(channel="C1", ts="1.0", text="x")
    assert info.value.response.status_code == 200 and info.value.response["error"] == "channel_not_found"
    assert "C1" not in slack.messages


async def test_a_hang_after_the_send_leaves_the_message_posted(slack: FakeSlack) -> None:
    """The outbox's crash case: Slack posted it, the client never heard. History with metadata finds it."""
    impatient = AsyncWebClient(token="xoxb-test", base_url=slack.base_url, timeout=1)
    slack.fail_next("chat.postMessage", hang_seconds=60)
    with pytest.raises((asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        await impatient.chat_postMessage(channel="C7", text="alert", metadata=METADATA)
    history = await impatient.conversations_history(channel="C7", include_all_metadata=True)
    assert [m["metadata"]["event_payload"]["alert_id"] for m in history["messages"]] == ["a1"]
    slack.reset()  # releases the held answer at once


async def test_a_hang_with_a_status_fails_without_effect(slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", 503, hang_seconds=0.05)
    with pytest.raises(SlackApiError) as info:
        await AsyncWebClient(token="xoxb-test", base_url=slack.base_url).chat_postMessage(
            channel="C8", text="x"
        )
    assert info.value.response.status_code == 503
    assert "C8" not in slack.messages


def test_fail_next_needs_a_fault(slack: FakeSlack) -> None:
    with pytest.raises(ValueError, match="status="):
        slack.fail_next("chat.postMessage")
