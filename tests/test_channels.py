"""bot/channels.py: a Slack channel's id and `#name` compare as one destination."""

from __future__ import annotations

from bot.channels import is_channel_name, same_channels

NAMES = {"C0DPRK": "watch-dprk", "C0OLD": "cables", "C0NEW": "cables"}


def test_a_name_brings_in_the_ids_last_seen_under_it() -> None:
    assert same_channels(["slack:#Watch-DPRK"], NAMES) == {"slack:#watch-dprk", "slack:c0dprk"}
    assert same_channels(["slack:#cables"], NAMES) == {"slack:#cables", "slack:c0old", "slack:c0new"}


def test_an_id_brings_in_its_name() -> None:
    assert same_channels(["slack:C0DPRK"], NAMES) == {"slack:c0dprk", "slack:#watch-dprk"}


def test_unknown_channels_and_other_destinations_stay_as_written_without_case() -> None:
    assert same_channels(["slack:#nowhere", "slack:C0UNSEEN"], NAMES) == {"slack:#nowhere", "slack:c0unseen"}
    assert same_channels(["teams:ops", "console"], NAMES) == {"teams:ops", "console"}
    assert same_channels([], NAMES) == set()
    assert same_channels(["slack:#watch-dprk"], {}) == {"slack:#watch-dprk"}


def test_direct_messages_have_no_channel_name_to_route_by() -> None:
    assert is_channel_name("watch-dprk")
    assert not is_channel_name("directmessage")
    assert not is_channel_name("privategroup")
    assert not is_channel_name("mpdm-ana--bo--cy-1")
    assert not is_channel_name("")
