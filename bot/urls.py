"""Canonical URLs: one spelling per article, so the same report seen twice gets the same item id.

Feeds link to the same article in many spellings: with campaign parameters (`?utm_source=rss`), through
redirect wrappers (Google Alerts, Facebook's link shim), with `#comments` fragments, `HTTP://Example.COM:80`.
`canonical_url` maps them to one string. It is pure, cheap, and never raises: a string that is not a URL
comes back stripped, not as an exception, because one odd link must not drop a whole feed.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote_plus, urlsplit, urlunsplit

# Query parameters that only track the click, never select the content. Exact names (lower case).
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        "fbclid",  # Facebook click id
        "gclid",  # Google Ads click id
        "dclid",  # Google display click id
        "gclsrc",
        "msclkid",  # Microsoft Ads
        "yclid",  # Yandex
        "mc_cid",  # Mailchimp campaign
        "mc_eid",  # Mailchimp recipient
        "igshid",  # Instagram share
        "ncid",  # Yahoo / Verizon Media feeds
        "cmpid",  # Washington Post, FT campaign id
        "ocid",  # MSN / Microsoft Start
        "ref",  # generic referrer tag (Medium, GitHub, many blogs)
        "ref_src",  # Twitter/X
        "ref_url",  # Twitter/X
        "_hsenc",  # HubSpot
        "_hsmi",  # HubSpot
        "mkt_tok",  # Marketo
        "oly_anon_id",  # Omeda
        "oly_enc_id",
        "vero_id",
        "wt_mc",  # Webtrends
        "wt.mc_id",
        "cmp",  # Guardian / BBC campaign
        "at_medium",  # BBC / AT Internet
        "at_campaign",
        "at_custom1",
        "at_custom2",
        "at_custom3",
        "at_custom4",
        "s_cid",  # Adobe
        "icid",  # internal campaign id
        "smid",  # New York Times share id
        "__twitter_impression",
        "spm",  # Alibaba
        "guccounter",  # Yahoo consent redirect
        "guce_referrer",
        "guce_referrer_sig",
    }
)
# Any parameter starting with one of these (lower case) is tracking: utm_source, utm_medium, utm_campaign,
# utm_term, utm_content, utm_id, utm_name, pk_campaign (Matomo), mtm_* (Matomo), stm_*, hsa_* (HubSpot ads).
TRACKING_PREFIXES: tuple[str, ...] = ("utm_", "pk_", "mtm_", "stm_", "hsa_")

_PATH_SAFE = "/%:@!$&'()*+,;=~-._"
_NEEDS_QUOTING = re.compile(r"[^A-Za-z0-9/%:@!$&'()*+,;=~._?-]")

_DEFAULT_PORTS = {"http": "80", "https": "443"}

# The shape nearly every feed link has: http(s), a plain host name (no user, port, IPv6, %-escape or
# non-ASCII), then path and query of characters that need no quoting, and any printable fragment. For it
# urlsplit's cleaning (stripping controls, removing tabs and newlines, bracket checks) has nothing to do,
# so _canonical_once reads the parts from this match instead: urlsplit/urlunsplit and the hostname and
# port properties were ~3/4 of its cost. Anything else takes the general path.
_PLAIN_URL = re.compile(
    r"(?i:(https?))://([A-Za-z0-9._-]++)"
    r"(/[A-Za-z0-9/%:@!$&'()*+,;=~._-]*+)?+"
    r"(?:\?([A-Za-z0-9/%:@!$&'()*+,;=~._?-]*+))?+"
    r"(?:#[!-~]*+)?+\Z"
)

# Redirect wrappers: (host, path) → the query parameter that holds the target. Hosts are matched with and
# without "www.".
_WRAPPERS: dict[tuple[str, str], tuple[str, ...]] = {
    # Google Alerts RSS: https://www.google.com/url?rct=j&sa=t&url=<target>&ct=ga&cd=...&usg=...
    ("google.com", "/url"): ("url", "q"),
    # Google News RSS (older form) carried the target in url=; current news.google.com/rss/articles/<id>
    # links are opaque and left alone.
    ("news.google.com", "/news/url"): ("url",),
    ("news.google.com", "/url"): ("url",),
    # Facebook link shim
    ("l.facebook.com", "/l.php"): ("u",),
    ("lm.facebook.com", "/l.php"): ("u",),
    ("m.facebook.com", "/l.php"): ("u",),
    ("facebook.com", "/l.php"): ("u",),
    # Bing News RSS: https://www.bing.com/news/apiclick.aspx?...&url=<target>
    ("bing.com", "/news/apiclick.aspx"): ("url",),
}

_MAX_UNWRAP = 3  # a wrapper wrapping a wrapper (Alerts → Facebook shim) is seen; a longer chain is not


def _is_tracking(name: str) -> bool:
    n = name.lower()
    if "%" in n or "+" in n:
        n = unquote_plus(n)
    return n in TRACKING_PARAMS or n.startswith(TRACKING_PREFIXES)


class _TrackingNames(dict[str, bool]):
    """_is_tracking by parameter name, remembered: a site uses a handful of names (`id`, `page`,
    `utm_source`), and a dict lookup is a fifth of the cost of deciding again. Bounded, because names are
    whatever a feed writes."""

    def __missing__(self, name: str) -> bool:
        tracking = _is_tracking(name)
        if len(self) < 4096:
            self[name] = tracking
        return tracking


_TRACKING_NAMES = _TrackingNames()
_WRAPPER_PATHS = frozenset(path for _, path in _WRAPPERS)


def _unwrap(scheme: str, host: str, path: str, query: str) -> str | None:
    """The target of a redirect wrapper, or None when the URL is not one."""
    key = host[4:] if host.startswith("www.") else host
    names = _WRAPPERS.get((key, path))
    if not names or not query:
        return None
    params = dict(parse_qsl(query, keep_blank_values=True))
    for name in names:
        target = params.get(name, "")
        if target.startswith(("http://", "https://", "HTTP://", "HTTPS://")):
            return target
    return None


def _canonical_query(query: str) -> str:
    # Work on the raw `name=value` pieces: decoding and re-encoding every value (parse_qsl + urlencode)
    # cost 3x the rest of _canonical_once and buys little.
    tracking = _TRACKING_NAMES
    pieces = [p for p in query.split("&") if p and not tracking[p.partition("=")[0]]]
    pieces.sort()
    return "&".join(pieces)


def _canonical_plain(url: str, m: re.Match[str]) -> tuple[str, str | None]:
    """_canonical_once for a URL that matched _PLAIN_URL: the same result without urllib."""
    scheme, host, path, query = m.groups()
    scheme = scheme.lower()
    host = host.lower().rstrip(".")
    if not host:
        return url, None
    path = path or "/"
    if query:
        if path in _WRAPPER_PATHS:
            target = _unwrap(scheme, host, path, query)
            if target is not None:
                return url, target
        query = _canonical_query(query)  # no quoting: the pattern admitted no character that needs it
        if query:
            return f"{scheme}://{host}{path}?{query}", None
    return f"{scheme}://{host}{path}", None


def _canonical_once(url: str) -> tuple[str, str | None]:
    """(canonical form, wrapped target or None)."""
    m = _PLAIN_URL.match(url)
    if m is not None:
        return _canonical_plain(url, m)
    return _canonical_general(url)


def _canonical_general(url: str) -> tuple[str, str | None]:
    """_canonical_once for any string, through urllib (tests hold _canonical_plain to its results)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")  # hostname is lower-cased by urlsplit
    if not scheme or not host:
        return url, None
    target = _unwrap(scheme, host, parts.path, parts.query)
    if target is not None:
        return url, target
    try:
        port = parts.port
    except ValueError:  # "http://x.com:99999/" or ":abc": keep what the feed wrote
        port = None
    netloc = host
    if ":" in host:  # IPv6 literal
        netloc = f"[{host}]"
    if port is not None and str(port) != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{port}"
    if parts.username or parts.password:
        userinfo = parts.username or ""
        if parts.password:
            userinfo += f":{parts.password}"
        netloc = f"{userinfo}@{netloc}"
    path = parts.path or "/"
    if _NEEDS_QUOTING.search(path):
        # Re-quote what a browser would (spaces, non-ASCII) but keep existing escapes and reserved
        # characters, so /caf%C3%A9 and /café end up the same.
        path = quote(path, safe=_PATH_SAFE)
    query = ""
    if parts.query:
        query = _canonical_query(parts.query)
        if _NEEDS_QUOTING.search(query):
            query = quote(query, safe=_PATH_SAFE + "?")
    return urlunsplit((scheme, netloc, path, query, "")), None


def canonical_url(url: str | None) -> str:
    """One spelling per article: lower-case scheme/host, no default port, no fragment, no tracking
    parameters, remaining parameters sorted, redirect wrappers unwrapped; path case kept. Never raises."""
    if not url:
        return ""
    s = url.strip()
    try:
        m = _PLAIN_URL.match(s)
        if m is not None:  # the common case, spared the loop below: a plain link that wraps nothing
            canon, target = _canonical_plain(s, m)
            if target is None:
                return canon
        for _ in range(_MAX_UNWRAP + 1):
            canon, target = _canonical_once(s)
            if target is None:
                return canon
            s = target.strip()
        return _canonical_once(s)[0]
    except Exception:  # urllib raises ValueError on e.g. "http://[::1" — best effort is the input itself
        return s
