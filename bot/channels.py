"""One Slack channel, two spellings: `slack:C0123ABCD` (its id) and `slack:#watch-dprk` (its name).

config.toml routes topics and digests by either; `/news subscribe` and `/news mute` record the channel they
ran in by id, the one thing a rename does not change; the Mute button records the alert's destination as
config wrote it. Whatever compares destinations compares their aliases: the destination itself (without
case, as Slack treats names) and, through the names last seen in slash commands (`Store.note_channel`),
the other spelling. A channel never seen in a command is known by the spelling config gave it only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SLACK = "slack:"
# What Slack sends as channel_name where there is no channel name to route by.
NOT_CHANNEL_NAMES = frozenset({"directmessage", "privategroup"})


def same_channels(destinations: Iterable[str], names: Mapping[str, str]) -> set[str]:
    """Every lower-cased spelling of `destinations`, given `names` (Slack channel id → its latest name)."""
    by_id = {cid.lower(): name.lower() for cid, name in names.items()}
    ids_of: dict[str, list[str]] = {}
    for cid, name in by_id.items():
        ids_of.setdefault(name, []).append(cid)
    out: set[str] = set()
    for destination in destinations:
        d = destination.strip().lower()
        out.add(d)
        if not d.startswith(SLACK):
            continue
        rest = d[len(SLACK) :]
        if rest.startswith("#"):
            out.update(f"{SLACK}{cid}" for cid in ids_of.get(rest[1:], ()))
        elif rest in by_id:
            out.add(f"{SLACK}#{by_id[rest]}")
    return out


def is_channel_name(name: str) -> bool:
    """Whether a slash command's channel_name names a channel config could route to."""
    return bool(name) and name.lower() not in NOT_CHANNEL_NAMES and not name.startswith("mpdm-")
