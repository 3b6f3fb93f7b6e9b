"""`/feedback/<token>` on `watchfloor serve`: where a Teams card's Relevant / Not relevant links land.

    GET  /feedback/<token>  → check the token → a page naming the alert and the verdict, with one button
    POST /feedback/<token>  → check the token → record the verdict (as a Slack click) → "Recorded"

Why a button and not a record-on-GET: link previewers, mail and chat security scanners (Safe Links and the
like) fetch URLs nobody clicked; a GET that changed state would cast votes on their behalf. GET only shows;
the POST from the page's own form records. A replayed link (the same POST again) records the same verdict on
the same row and says "already recorded".

Answers: 200 with the page; 403 for a tampered or expired token (nothing recorded); 404 for a genuine token
whose alert is gone; 503 when this server has no `WATCHFLOOR_LINK_SECRET` to check tokens with. Every
page is HTML-escaped and carries headers that keep the token out of caches and Referer headers.

Synchronous (the store is): the web app calls `answer` in a thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.feedback_links import (
    FeedbackLinkError,
    LinkSetupError,
    UnknownLinkAlert,
    link_secret,
    read_token,
    record_link_verdict,
    token_of_path,
)
from bot.render.teams import (
    FeedbackView,
    feedback_confirm_page,
    feedback_done_page,
    feedback_problem_page,
)
from bot.store import Store

log = logging.getLogger(__name__)

METHODS = ("GET", "HEAD", "POST")
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-robots-tag", b"noindex"),
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ),
)


@dataclass(frozen=True, slots=True)
class PageAnswer:
    status: int
    html: str


def is_feedback_path(path: str) -> bool:
    return token_of_path(path) is not None


def answer(
    store: Store,
    path: str,
    method: str,
    now: datetime,
    topic_title: Callable[[str], str],
    environ: Mapping[str, str] = os.environ,
) -> PageAnswer:
    """The page (and status) for one request to `/feedback/<token>`; records only on POST."""
    token = token_of_path(path) or ""
    try:
        secret = link_secret(environ)
    except LinkSetupError as exc:
        log.error("feedback link cannot be checked: %s", exc)
        return PageAnswer(
            503,
            feedback_problem_page(
                "Feedback links are not set up on this server (WATCHFLOOR_LINK_SECRET is missing). "
                "Tell whoever runs Watchfloor."
            ),
        )
    try:
        claim = read_token(secret, token, now)
        outcome = record_link_verdict(store, claim, now, confirm=method == "POST")
    except FeedbackLinkError as exc:
        log.warning("feedback link refused method=%s reason=%s", method, type(exc).__name__)
        return PageAnswer(403, feedback_problem_page(str(exc)))
    except UnknownLinkAlert as exc:
        log.warning("feedback link for an alert no longer stored alert=%s", exc)
        return PageAnswer(
            404,
            feedback_problem_page(
                "This alert is no longer stored (the database was reset or the alert expired), so nothing "
                "was recorded."
            ),
        )
    if outcome.recorded:
        log.info(
            "feedback recorded alert=%s user=%s verdict=%s already=%s",
            claim.alert_id,
            claim.user_id,
            claim.verdict,
            outcome.already,
        )
    view = FeedbackView(
        title=outcome.alert.title,
        topic_title=topic_title(outcome.alert.alert.topic),
        verdict=claim.verdict,
        destination=claim.destination,
        already=outcome.already,
    )
    return PageAnswer(200, feedback_done_page(view) if outcome.recorded else feedback_confirm_page(view))
