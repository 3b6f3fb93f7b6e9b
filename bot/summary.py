"""Extractive summaries: the one to three sentences of a report an analyst reads in the alert.

News is written as an inverted pyramid, so the lead sentences carry the point; the work is mostly in
throwing away what feeds wrap around it — bylines, wire credits, "Read more", photo captions, a newsletter
pitch, a body cut off mid-sentence by the feed — and in splitting sentences without breaking on "U.S.",
"Lt. Col." or "3.5". The promise:

    text ──lines──► boilerplate lines out ──sentences──► fragments, boilerplate and title restatements out
         ──score (position first, then overlap with the title and with the report's own centroid)──►
         ──greedy fill of max_sentences / max_chars, shown in reading order──► summary

Whole sentences only; when even the best one is longer than max_chars it is cut at a word boundary and
ends with "…". An empty text gives the title. Pure Python and regexes over the first few thousand
characters, so it costs tens of microseconds per item.
"""

from __future__ import annotations

import re


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


MAX_CHARS = 300
MAX_SENTENCES = 3
_HEAD_CHARS = 4000  # only the top of the pyramid is read: bounds the cost of very long bodies
_MAX_CANDIDATES = 12  # sentences scored, from the top

# Tokens that end with a full stop without ending the sentence.
_ABBREVIATIONS = _word_set(
    """
    mr mrs ms dr prof sr jr st mt ft lt col gen maj capt cmdr adm sgt cpl pvt sen rep gov pres supt insp
    rev hon gen brig fr messrs
    jan feb mar apr jun jul aug sep sept oct nov dec
    no nos vol vols fig figs art sec ch pp p para approx est dept univ assn bros inc corp co ltd plc llc
    vs etc al cf ca govt
    u.s u.k u.n e.u u.s.a d.c e.g i.e a.m p.m n.y l.a
    """
)
# After an abbreviation like "U.S." these words start a new sentence ("... in the U.S. The talks ...").
_SENTENCE_STARTERS = _word_set(
    "the a an it its he she they we i this that these those but and however in on at after before "
    "when while there his her their our"
)

# A boundary candidate: terminal punctuation, optional closing quotes/brackets, then whitespace.
_BOUNDARY = re.compile(r"""([.!?…]+)(["'”’)\]]*)\s+""")
_WORD = re.compile(r"[^\W_]+")

# Lines that are wrapping, not news. Anchored at the start: a line that *starts* like this is dropped whole.
_BOILERPLATE_LINE = re.compile(
    r"""^\W*(?:
        by\s+[A-Z][\w.'’-]+(?:\s+[A-Z][\w.'’-]+){0,3}\s*(?:[,|/–—-].*)?$   # By Jane Doe, Staff writer
      | (?:reporting|writing|editing|additional\ reporting|compiled)\ by\b
      | read\ (?:more|the\ full|next|also)\b | related\s*: | see\ also\b | more\ on\ this\b
      | click\ here\b | share\ this\b | share\ on\b | sign\ up\b | subscribe\b
      | follow\ us\b | follow\ (?:\S+\ )?on\ (?:twitter|x|facebook|instagram|telegram)\b
      | (?:photo|image|picture|video|file\ photo)\s*(?:credit)?\s*[:|/]
      | (?:copyright|©)
      | all\ rights\ reserved | advertisement$ | this\ article\ (?:was|first)\b
      | the\ post\ .+\ appeared\ first\ on\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# Sentences that are wrapping wherever they sit.
_BOILERPLATE_SENTENCE = re.compile(
    r"""(?:
        \b(?:reporting|editing|writing)\ by\ [A-Z]
      | \b(?:click|tap)\ here\b | \bread\ more\b | \bsign\ up\ for\b | \bsubscribe\ to\ our\b
      | \bfollow\ us\ on\b | \bshare\ this\ (?:article|story|post)\b
      | \((?:photo|image|picture)\b[^)]*\)\s*$ | \b(?:getty\ images|afp\ via\ getty|ap\ photo)\b
      | \bas\ well\ as\ (?:reuters|the\ associated\ press|afp|ap)\b   # "— A and B as well as Reuters and"
      | \ball\ rights\ reserved\b | \bcookies?\ policy\b | \bjavascript\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# Wire datelines: "WASHINGTON (Reuters) - ", "SEOUL, Oct 22 (AP) — ", "(AFP) -".
_DATELINE = re.compile(
    r"""^\s*(?:[A-Z][A-Za-z.,'’ -]{1,40}(?:,\s*[A-Z][a-z]{2,8}\.?\s+\d{1,2})?\s*)?
        \((?:Reuters|AP|AFP|Bloomberg|UPI|Xinhua|Yonhap|dpa|AFP-JIJI)\)\s*[-–—:]+\s*""",
    re.VERBOSE,
)
_CAPS_DATELINE = re.compile(r"^[A-Z][A-Z .,'’-]{2,40}\s[-–—]\s+(?=[A-Z])")  # "KYIV, Ukraine — " style
_TRUNCATED_END = re.compile(r"(?:…|\.\.\.|\[(?:…|\.\.\.)\]|\[\+\d+ chars\])\s*$")
_TERMINAL = re.compile(r"""[.!?]["'”’)\]]*$""")

# Short, meaningless words for the overlap scores.
_STOP = _word_set(
    """
    a an the and or but if of to in on at by for with from as is are was were be been being it its this
    that these those he she they we you i his her their our your them him us not no so than then there
    has have had do does did will would could should may might can said says say also after before over
    into about up out more most other some such what which who whom when where while how all any each
    """
)


# Memo of raw word -> its stem, or "" for a stop word or a single letter (what the overlap scores ignore).
_STEMS: dict[str, str] = {}


def _stem(word: str) -> str:
    low = word.lower()
    if len(low) < 2 or low in _STOP:
        return ""
    for suffix in ("ing", "ed", "es", "s"):
        if len(low) > len(suffix) + 3 and low.endswith(suffix):
            return low[: -len(suffix)]
    return low


def _content_words(text: str) -> set[str]:
    words = _WORD.findall(text)
    stems = set(map(_STEMS.get, words))
    if None in stems:
        if len(_STEMS) > 200_000:
            _STEMS.clear()
        for word in words:
            if word not in _STEMS:
                _STEMS[word] = _stem(word)
        stems = set(map(_STEMS.__getitem__, words))
    stems.discard("")
    return stems  # type: ignore[return-value]


# Plain substrings one of which every _BOILERPLATE_SENTENCE match contains: a cheap test that spares
# most sentences the regex.
_BOILERPLATE_HINTS = (
    " by ",
    "here",
    "read more",
    "sign up",
    "subscribe",
    "follow us",
    "share this",
    "photo",
    "image",
    "picture",
    "getty",
    "as well as",
    "rights reserved",
    "cookie",
    "javascript",
)


def _is_boilerplate(sentence: str) -> bool:
    low = sentence.lower()
    if not any(hint in low for hint in _BOILERPLATE_HINTS):
        return False
    return bool(_BOILERPLATE_SENTENCE.search(sentence))


def _is_abbreviation(before: str, after: str) -> bool:
    """Whether the full stop ending `before` is part of an abbreviation rather than a sentence end."""
    token = before.rsplit(None, 1)[-1].lstrip("(\"'“‘").rstrip(".").lower() if before.strip() else ""
    if not token:
        return False
    if len(token) == 1 and token.isalpha():  # an initial: "J. Smith", "Kim Jong Un's ... U."
        return True
    if token in _ABBREVIATIONS:
        if "." in token:  # "U.S." can end a sentence: trust a capitalised ordinary sentence starter
            first = after.split(None, 1)[0].strip("\"'“‘").lower() if after.strip() else ""
            return first not in _SENTENCE_STARTERS
        return True
    return False


def split_sentences(text: str) -> list[str]:
    """Sentences of plain text. Line breaks always end a sentence; `.` ends one unless it is part of an
    abbreviation, an initial or a number (no whitespace follows a decimal point, so "3.5" never splits)."""
    sentences: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        start = 0
        for match in _BOUNDARY.finditer(line):
            end = match.end()
            rest = line[end:]
            if not rest:
                break
            nxt = rest[0]
            if not (nxt.isupper() or nxt.isdigit() or nxt in "\"'“‘([—–-"):
                continue  # "e.g. the ..." or a lower-case continuation is not a new sentence
            if match.group(1) == "." and _is_abbreviation(line[start : match.start()], rest):
                continue
            sentences.append(line[start : match.start(2) + len(match.group(2))].strip())
            start = end
        tail = line[start:].strip()
        if tail:
            sentences.append(tail)
    return sentences


def _clean_lines(text: str) -> list[str]:
    lines = []
    for raw in text[:_HEAD_CHARS].splitlines():
        line = " ".join(raw.split())
        if not line or _BOILERPLATE_LINE.match(line):
            continue
        lines.append(line)
    if lines:
        lines[0] = _CAPS_DATELINE.sub("", _DATELINE.sub("", lines[0]))
    return lines


def _usable(sentence: str, words: set[str], is_last: bool, title_words: set[str]) -> bool:
    if len(sentence) < 25 or len(sentence.split()) < 4:
        return False
    if _is_boilerplate(sentence) or _BOILERPLATE_LINE.match(sentence):
        return False
    if _TRUNCATED_END.search(sentence):
        return False
    if is_last and not _TERMINAL.search(sentence):  # a body cut off by the feed
        return False
    # A restatement of the title adds nothing under it in the alert.
    return not (words and title_words and len(words - title_words) <= max(1, len(words) // 5))


def _cut(sentence: str, max_chars: int) -> str:
    if len(sentence) <= max_chars:
        return sentence
    cut = sentence[: max_chars - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:–—-") + "…"


def summarise(title: str, text: str, max_chars: int = MAX_CHARS, max_sentences: int = MAX_SENTENCES) -> str:
    """One to `max_sentences` whole sentences of `text`, at most `max_chars` long, boilerplate left out."""
    title = " ".join(title.split())
    lines = _clean_lines(text)
    sentences: list[str] = []
    for line in lines:
        sentences.extend(split_sentences(line))
        if len(sentences) >= _MAX_CANDIDATES + 1:
            break
    title_words = _content_words(title)
    last_index = len(sentences) - 1
    candidates: list[tuple[int, str]] = []
    words: list[set[str]] = []
    for i, sentence in enumerate(sentences[: _MAX_CANDIDATES + 1]):
        sentence_words = _content_words(sentence)
        if _usable(sentence, sentence_words, i == last_index, title_words):
            candidates.append((i, sentence))
            words.append(sentence_words)
    candidates, words = candidates[:_MAX_CANDIDATES], words[:_MAX_CANDIDATES]
    if not candidates:
        return _cut(title, max_chars) if title else _cut(" ".join(lines), max_chars)

    centroid: dict[str, int] = {}
    for ws in words:
        for w in ws:
            centroid[w] = centroid.get(w, 0) + 1
    scored = []
    for rank, ((i, sentence), ws) in enumerate(zip(candidates, words, strict=True)):
        if ws:
            title_overlap = len(ws & title_words) / len(ws)
            centre = sum(centroid[w] - 1 for w in ws) / (len(ws) * max(1, len(candidates) - 1))
        else:
            title_overlap = centre = 0.0
        position = 1.0 / (1.0 + rank)
        scored.append((2.0 * position + 0.5 * title_overlap + 0.5 * centre, i, sentence))
    scored.sort(key=lambda t: (-t[0], t[1]))

    if len(scored[0][2]) > max_chars:  # the lead is too long to quote whole: cut it rather than skip it
        return _cut(scored[0][2], max_chars)
    chosen: list[tuple[int, str]] = []
    used = 0
    for _, i, sentence in scored:
        extra = len(sentence) + (1 if chosen else 0)
        if used + extra <= max_chars:
            chosen.append((i, sentence))
            used += extra
            if len(chosen) >= max_sentences:
                break
    return " ".join(s for _, s in sorted(chosen))


__all__ = ["MAX_CHARS", "MAX_SENTENCES", "split_sentences", "summarise"]
