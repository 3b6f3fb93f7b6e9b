"""Feedback from Teams without a Teams bot: signed, expiring links to `watchfloor serve`.

A Workflows webhook can post a card but cannot receive its button clicks, so the *Relevant* / *Not
relevant* actions on a Teams card are `Action.OpenUrl` links to `<[web].public_url>/feedback/<token>`.
The token carries (alert id, verdict, Teams destination, expiry) and an HMAC-SHA256 over them, keyed by
`WATCHFLOOR_LINK_SECRET`:

    make_token(secret, claim) ──► "<payload b64url>.<mac b64url>" ──► read_token(secret, token, now) ──► claim

What this module promises:
- A token whose payload or MAC was changed in any way, or that was signed with another secret, is
  `TamperedLink`; one past its expiry is `ExpiredLink`. The MAC is checked (constant-time) before anything
  in the payload is believed.
- The MAC covers a version tag, so a future token layout cannot be confused with this one.
- Tokens and links are pure functions of their inputs and an explicit `now`; the secret is passed in,
  read from the environment only by `link_secret`, and never logged or put in an error message.

The one writer, `record_link_verdict`, records a verdict exactly as a Slack click does
(`Store.record_feedback`: one row per alert and user, the latest verdict counts). A Workflows webhook tells
us nothing about who clicked, so the user is the destination itself, `teams:<name>`: a channel's clicks
count as one voice, the latest of them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.feedback import ALERT_ID_MAX, Verdict

if TYPE_CHECKING:
    from bot.store import Store, StoredAlert

SECRET_ENV = "WATCHFLOOR_LINK_SECRET"
# Shorter secrets are refused: an HMAC key anyone can guess lets anyone forge votes.
SECRET_MIN_LENGTH = 16
FEEDBACK_PATH = "/feedback/"
USER_ID_MAX = 40  # the feedback table's user_id column
TOKEN_MAX = 400  # ours are ~100 characters; anything much longer did not come from us

_VERSION = b"wf-feedback-1"
_VERDICT_CODES: dict[Verdict, str] = {"relevant": "r", "not_relevant": "n"}
_CODE_VERDICTS: dict[str, Verdict] = {code: verdict for verdict, code in _VERDICT_CODES.items()}


class FeedbackLinkError(Exception):
    """A feedback link that must not be honoured; the message is safe to show to whoever opened it."""


class TamperedLink(FeedbackLinkError):
    """The token was not signed by us with this secret (edited, truncated, made up, or the secret changed)."""


class ExpiredLink(FeedbackLinkError):
    """A genuine token past its expiry (`[web].feedback_link_ttl` after the card was sent)."""


class LinkSetupError(Exception):
    """Feedback links are needed but cannot be made or checked; the message says what to set."""


@dataclass(frozen=True, slots=True)
class LinkClaim:
    """What a feedback link asserts: this verdict on this alert, from this Teams destination, until then."""

    alert_id: str
    verdict: Verdict
    destination: str  # the Teams destination's name (`[[teams]] name`), without the `teams:` prefix
    expires: datetime

    @property
    def user_id(self) -> str:
        return teams_user(self.destination)


@dataclass(frozen=True, slots=True)
class FeedbackLinks:
    """The two URLs a card's Relevant / Not relevant actions open."""

    relevant: str
    not_relevant: str


def link_secret(environ: Mapping[str, str] = os.environ) -> bytes:
    """The HMAC key from `WATCHFLOOR_LINK_SECRET`, or `LinkSetupError` saying how to set one."""
    value = environ.get(SECRET_ENV, "").strip()
    if not value:
        raise LinkSetupError(
            f"{SECRET_ENV} is not set: Teams feedback links need it to sign and check tokens. Set it to a "
            "long random value, the same for `watchfloor serve` and the worker, e.g. the output of "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    if len(value) < SECRET_MIN_LENGTH:
        raise LinkSetupError(
            f"{SECRET_ENV} is {len(value)} characters long: use at least {SECRET_MIN_LENGTH} random "
            "characters (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return value.encode()


def teams_user(destination: str) -> str:
    """The feedback user id for a Teams destination: `teams:<name>`, fitted to the 40-character column.

    Names longer than fit keep a readable prefix and gain a hash of the whole name, so two long names
    sharing a prefix stay two voices."""
    user = f"teams:{destination}"
    if len(user) <= USER_ID_MAX:
        return user
    digest = hashlib.sha256(destination.encode()).hexdigest()[:8]
    return f"{user[: USER_ID_MAX - 9]}~{digest}"


_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or any(c not in _B64_CHARS for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _VERSION + b"\x00" + payload, hashlib.sha256).digest()


def make_token(secret: bytes, claim: LinkClaim) -> str:
    """The URL-safe token for `claim`: base64url(payload) "." base64url(HMAC-SHA256)."""
    if not secret:
        raise LinkSetupError(f"{SECRET_ENV} is empty: feedback links cannot be signed")
    if not 0 < len(claim.alert_id) <= ALERT_ID_MAX or "\n" in claim.alert_id:
        raise ValueError(f"alert id {claim.alert_id[:50]!r} cannot go into a feedback link")
    if not claim.destination or "\n" in claim.destination:
        raise ValueError(f"destination {claim.destination[:90]!r} cannot go into a feedback link")
    expires = int(claim.expires.timestamp())
    payload = "\n".join(
        (claim.alert_id, _VERDICT_CODES[claim.verdict], claim.destination, str(expires))
    ).encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def read_token(secret: bytes, token: str, now: datetime) -> LinkClaim:
    """The claim a token carries, once its MAC holds and it has not expired at `now`.

    Raises `TamperedLink` or `ExpiredLink`; nothing in the payload is parsed before the MAC is checked."""
    if not secret:
        raise LinkSetupError(f"{SECRET_ENV} is empty: feedback links cannot be checked")
    if len(token) > TOKEN_MAX or token.count(".") != 1:
        raise TamperedLink("This feedback link is damaged or was not made by Watchfloor.")
    payload_text, mac_text = token.split(".")
    try:
        payload, given = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, binascii.Error):
        raise TamperedLink("This feedback link is damaged or was not made by Watchfloor.") from None
    if not hmac.compare_digest(given, _mac(secret, payload)):
        raise TamperedLink("This feedback link is damaged or was not made by Watchfloor.")
    # From here on the payload is ours; a malformed one would mean a bug in make_token, not an attacker.
    try:
        alert_id, code, destination, expires_text = payload.decode().split("\n")
        claim = LinkClaim(
            alert_id=alert_id,
            verdict=_CODE_VERDICTS[code],
            destination=destination,
            expires=datetime.fromtimestamp(int(expires_text), UTC),
        )
    except (UnicodeDecodeError, ValueError, KeyError, OverflowError, OSError):
        raise TamperedLink("This feedback link is damaged or was not made by Watchfloor.") from None
    if now >= claim.expires:
        raise ExpiredLink(
            "This feedback link has expired. Use /news in Slack, or ask for a newer alert, to give feedback."
        )
    return claim


def feedback_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{FEEDBACK_PATH}{token}"


def feedback_links(
    public_url: str, secret: bytes, alert_id: str, destination: str, now: datetime, ttl: timedelta
) -> FeedbackLinks:
    """Both links for one alert sent to the Teams destination named `destination`, valid for `ttl`."""
    expires = now + ttl

    def url(verdict: Verdict) -> str:
        return feedback_url(
            public_url, make_token(secret, LinkClaim(alert_id, verdict, destination, expires))
        )

    return FeedbackLinks(relevant=url("relevant"), not_relevant=url("not_relevant"))


def token_of_path(path: str) -> str | None:
    """`/feedback/<token>` → the token; anything else (no token, a further `/`) → None."""
    if not path.startswith(FEEDBACK_PATH):
        return None
    token = path[len(FEEDBACK_PATH) :]
    return token if token and "/" not in token else None


# -- the one writer ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkVerdict:
    """What opening (or confirming) a valid link came to."""

    claim: LinkClaim
    alert: StoredAlert
    recorded: bool  # False on a GET: shown, not yet confirmed
    already: bool  # this destination had given this very verdict before


class UnknownLinkAlert(LookupError):
    """The link is genuine but its alert is no longer stored (the database was reset)."""


def record_link_verdict(store: Store, claim: LinkClaim, now: datetime, *, confirm: bool) -> LinkVerdict:
    """Look up the claim's alert and, when `confirm`, record its verdict as a Slack click would.

    Idempotent: a replayed link records the same verdict on the same row (one verdict per user and alert).
    Raises `UnknownLinkAlert` for an alert no longer stored, and `TamperedLink` when the alert was not sent
    to the destination the link names (only a bug or a leaked secret could make such a token)."""
    stored = store.find_alert(claim.alert_id)
    if stored is None:
        raise UnknownLinkAlert(claim.alert_id)
    if stored.alert.destination != f"teams:{claim.destination}":
        raise TamperedLink("This feedback link does not belong to the alert it names.")
    before = store.feedback_for_alert(claim.alert_id).get(claim.user_id)
    if confirm:
        store.record_feedback(claim.alert_id, claim.user_id, claim.verdict, now)
    return LinkVerdict(claim, stored, recorded=confirm, already=before == claim.verdict)
