"""Redaction: the one mechanism that keeps secrets out of every text the SDK lets out.

A :class:`Redactor` knows the session's API key and, for the life of the session, the
last :data:`REMEMBERED` full token values the session received (:meth:`Redactor.learn`);
:meth:`Redactor.for_answer` adds every token value found in the answer being handled.
:meth:`Redactor.scrub` rewrites an error in place (message, args, detail, body, headers,
request id) before the pipeline raises it, and :class:`LogRedactor` does the same for
every record on the ``cellcast_async`` logger.

How a secret is found (README, "Redaction"): the text is searched as it is and again
with one layer of escapes decoded (percent-escapes in any case, JSON and Python escapes,
``\\uXXXX``, HTML entities), for each secret as it is, its hex (lower and upper case)
and its base64 and base64url at the three alignments a secret can have inside a larger
base64 blob. A match in the decoded text is mapped back to the original, whole escapes
included, and each match is masked there. Anything shaped like ``Bearer <credential>``
goes too. The cost per text and per error body is bounded (:data:`TEXT_CAP`,
:data:`BODY_BUDGET`).

:class:`Hidden` is a ``str`` whose ``repr()`` is masked: the key and the Authorization
header are held as one, so that a traceback formatted with its frames' locals shows
``'****'`` where they stand (README, "Redaction").
"""

from __future__ import annotations

import base64
import binascii
import bisect
import html.entities
import json
import logging
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, SupportsIndex

from multidict import CIMultiDict

from ._exceptions import APIError, CellcastError, _frozen_headers

__all__ = [
    "BODY_BUDGET",
    "MASK",
    "REMEMBERED",
    "TEXT_CAP",
    "Hidden",
    "LogRedactor",
    "Redactor",
    "answer_token_values",
    "hidden",
    "register",
    "token_values",
]

MASK: Final = "****"

# How many full token values a session remembers (least recently seen forgotten first).
REMEMBERED: Final = 1024

# "Bearer <anything up to a space or a quote>", in any case: an echoed Authorization header.
_BEARER: Final = re.compile(r"(?i)\b(bearer)(\s+|%20|\+)[^\s\"'\\,;]+")

# A spelling this long is masked wherever it stands; a shorter secret only between
# characters that cannot be part of a credential.
_ANYWHERE: Final = 8
_ALONE: Final = r"(?<![\w\-.~+/=%]){}(?![\w\-.~+/=%])"

# JSON keys whose string values are credentials wherever they sit in an answer.
_SECRET_KEYS: Final = frozenset({"token", "apikey", "api_key", "key", "secret", "accesstoken"})

# A token value shown masked ("ccst_****abcd", "eyJ...") is not a secret to remember.
_MASKED_VALUE: Final = re.compile(r"\*|\.\.\.|\u2026|\u2022")

_ALNUM: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_B64_STD: Final = frozenset(_ALNUM + "+/")
_B64_URL: Final = frozenset(_ALNUM + "-_")


class Hidden(str):
    """A ``str`` whose ``repr()`` (and the repr of any slice of it) is ``'****'``.

    ``str()``, formatting and every other use see the value: aiohttp sends it as it is.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"'{MASK}'"

    def __getitem__(self, key: SupportsIndex | slice) -> Hidden:
        # rich shortens a long string local as repr(value[:n]): that slice stays hidden.
        return Hidden(str.__getitem__(self, key))


def hidden(value: Any) -> Any:
    """``value`` as a :class:`Hidden` if it is a ``str``; anything else as it is."""
    return Hidden(value) if isinstance(value, str) and not isinstance(value, Hidden) else value


# --- decoding: one layer of every escape a server may wrap a secret in -------------------

_ESCAPE: Final = re.compile(
    r"""
      (?P<pct>(?:%[0-9A-Fa-f]{2})+)
    | (?P<hexesc>(?:\\x[0-9A-Fa-f]{2})+)
    | \\u(?P<hi>[dD][89abAB][0-9A-Fa-f]{2})\\u(?P<lo>[dD][c-fC-F][0-9A-Fa-f]{2})
    | \\u(?P<u4>[0-9A-Fa-f]{4})
    | \\U(?P<u8>[0-9A-Fa-f]{8})
    | \\(?P<esc>["\\/'bfnrtv])
    | &\#(?P<dec>[0-9]{1,8});?
    | &\#[xX](?P<hexent>[0-9A-Fa-f]{1,8});?
    | &(?P<name>[A-Za-z][A-Za-z0-9]{1,31};?)
    """,
    re.VERBOSE,
)
# The three families of escapes, each known by the character every escape of it starts
# with. A secret may hold what looks like another family's escape (``\\b`` in an
# HTML-escaped secret, ``%41`` in a JSON string), which decoding every family at once
# would turn into something else: where a book holds such a secret, a text with more than
# one family in it is decoded once with all of them and once with each alone.
_MAY_ESCAPE: Final = re.compile(r"[%\\&]")
_FAMILIES: Final = (
    ("%", frozenset({"pct"})),
    ("\\", frozenset({"hexesc", "lo", "u4", "u8", "esc"})),
    ("&", frozenset({"dec", "hexent", "name"})),
)
# ``None``: every family.
_Kinds = frozenset[str] | None
_SHORT_ESCAPES: Final = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "'": "'",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}
_ENTITIES: Final = html.entities.html5

# Up to this many spellings (about 28 remembered values) a bounded book is searched
# with one compiled regex, rebuilt when a value comes or goes; past it, with the index.
_REGEX_UP_TO: Final = 256

# A text longer than this is cut there once masked, and the rest never shown: the cost of
# redaction per text stays bounded whatever a server sends (README, "Redaction"). The
# margin past the cut is masked too, so that no secret that crosses the cut shows a part.
TEXT_CAP: Final = 64 * 1024
_MARGIN: Final = 8 * 1024

# How much of an error's decoded body is kept, in characters (README, "Redaction").
BODY_BUDGET: Final = 2**20
_NOT_SHOWN: Final = "... [the rest of the answer is not shown: over 1 MiB of text]"

# A decoded text's map: (start in the decoded text, start and end in the original,
# whether it is one escape, masked whole).
_Segment = tuple[int, int, int, bool]


def _code_point(number: int) -> str | None:
    return chr(number) if 0 <= number <= 0x10FFFF else None


def _units(match: re.Match[str]) -> list[tuple[str, int]] | None:
    """The characters an escape stands for, each with the original characters it takes."""
    kind = match.lastgroup
    if kind == "pct":  # bytes: UTF-8, an invalid byte kept as a lone surrogate
        raw = bytes.fromhex(match.group("pct").replace("%", ""))
        text = raw.decode("utf-8", "surrogateescape")
        return [(ch, 3 * len(ch.encode("utf-8", "surrogateescape"))) for ch in text]
    if kind == "hexesc":  # a bytes repr (UTF-8), else a str repr (code points)
        raw = bytes.fromhex(match.group("hexesc").replace("\\x", ""))
        try:
            return [(ch, 4 * len(ch.encode("utf-8"))) for ch in raw.decode("utf-8")]
        except UnicodeDecodeError:
            return [(chr(b), 4) for b in raw]
    if kind == "lo":  # a surrogate pair: one astral character
        high, low = int(match.group("hi"), 16), int(match.group("lo"), 16)
        return [(chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)), 12)]
    width = match.end() - match.start()
    if kind == "u4":
        return [(chr(int(match.group("u4"), 16)), width)]
    if kind == "u8":
        char = _code_point(int(match.group("u8"), 16))
        return None if char is None else [(char, width)]
    if kind == "esc":
        return [(_SHORT_ESCAPES[match.group("esc")], width)]
    if kind == "dec":
        char = _code_point(int(match.group("dec")))
        return None if char is None else [(char, width)]
    if kind == "hexent":
        char = _code_point(int(match.group("hexent"), 16))
        return None if char is None else [(char, width)]
    name = match.group("name")
    value = _ENTITIES.get(name)
    return None if value is None else [(value, width)]


def _decoded_char(match: re.Match[str]) -> str:
    if match.lastgroup == "esc":  # the common case, kept short
        return _SHORT_ESCAPES[match.group("esc")]
    units = _units(match)
    return match.group() if units is None else "".join(chars for chars, _ in units)


def _decoded(text: str, kinds: _Kinds = None) -> str:
    """What :func:`_decode` returns as text, without the map: a search needs no more."""
    if kinds is None:
        return _ESCAPE.sub(_decoded_char, text)
    return _ESCAPE.sub(lambda m: _decoded_char(m) if m.lastgroup in kinds else m.group(), text)


def _decode(text: str, kinds: _Kinds = None) -> tuple[str, list[_Segment]]:
    """``text`` with one layer of escapes decoded (those of ``kinds``, or every one), and
    where each piece came from."""
    pieces: list[str] = []
    segments: list[_Segment] = []
    decoded = 0
    at = 0
    for match in _ESCAPE.finditer(text):
        # No escape of one family holds the first character of another's, so skipping
        # a match of another family never hides one of these kinds.
        units = _units(match) if kinds is None or match.lastgroup in kinds else None
        if units is None:  # not an escape after all (an unknown entity): plain text
            continue
        start = match.start()
        if start > at:
            pieces.append(text[at:start])
            segments.append((decoded, at, start, False))
            decoded += start - at
        for chars, width in units:
            pieces.append(chars)
            segments.append((decoded, start, start + width, True))
            decoded += len(chars)
            start += width
        at = match.end()
    if at < len(text):
        pieces.append(text[at:])
        segments.append((decoded, at, len(text), False))
    return "".join(pieces), segments


def _decodings(text: str, *, each: bool) -> list[_Kinds]:
    """Which decodings of ``text`` are searched: none without an escape's first
    character, every family at once, and (``each``) each family alone where two or
    more stand."""
    present = [kinds for first, kinds in _FAMILIES if first in text]
    if len(present) < 2 or not each:
        return [None] if present else []
    return [None, *present]


def _mapped(spans: list[tuple[int, int]], segments: list[_Segment]) -> list[tuple[int, int]]:
    """Spans of a decoded text as spans of the original: an escape is masked whole."""
    starts = [segment[0] for segment in segments]
    mapped = []
    for start, end in spans:
        first = segments[bisect.bisect_right(starts, start) - 1]
        last = segments[bisect.bisect_right(starts, end - 1) - 1]
        begin = first[1] if first[3] else first[1] + start - first[0]
        finish = last[2] if last[3] else last[1] + end - last[0]
        mapped.append((begin, finish))
    return mapped


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span (overlapping ones merged) replaced by one mask."""
    out: list[str] = []
    at = 0
    for start, end in sorted(spans):
        if end <= at:
            continue
        if start > at:
            out.append(text[at:start])
        if start >= at:
            out.append(MASK)
        at = end
    out.append(text[at:])
    return "".join(out)


# --- the spellings of a secret, searched in the decoded text -----------------------------


def _b64_cores(raw: bytes) -> Iterator[str]:
    """The base64 characters that depend on ``raw`` alone, at offsets 0, 1 and 2 of a blob.

    Inside a larger blob a secret starts at one of three byte offsets modulo 3. At each,
    the characters whose six bits all come from the secret are the same whatever
    surrounds it; the one or two characters at each edge mix in a neighbour's bits. A
    match is widened by one base64 character on each side (:meth:`_Book.find`), so the
    edge characters, which carry up to four of the secret's bits, are masked too.
    """
    bits = 8 * len(raw)
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode("ascii").rstrip("=")
        first = -(-8 * offset // 6)  # the first character wholly inside the secret
        last = (8 * offset + bits - 6) // 6  # the last one
        yield encoded[first : last + 1]


def _spellings(secret: str) -> tuple[set[str], dict[str, frozenset[str]]]:
    """``(plain and hex spellings, base64 cores with their alphabet)`` of a secret,
    searched once the text is decoded."""
    plain = {secret}
    if len(secret) < _ANYWHERE:  # hex and base64 of a few characters would mask noise
        return plain, {}
    raw = secret.encode("utf-8", "surrogatepass")
    hexed = binascii.hexlify(raw).decode("ascii")
    plain |= {hexed, hexed.upper()}
    cores: dict[str, frozenset[str]] = {}
    for core in _b64_cores(raw):
        if len(core) >= _ANYWHERE:
            cores[core] = _B64_STD
            cores.setdefault(core.translate(_URLSAFE), _B64_URL)
    return plain, {core: chars for core, chars in cores.items() if core not in plain}


_URLSAFE: Final = str.maketrans("+/", "-_")


class _Book:
    """A set of secrets and how to find their spellings in a decoded text.

    A fixed book (the key, an answer's values) is searched with one compiled regex,
    built once. A bounded book (the values a session remembers; least recently seen go
    first) also keeps a dictionary of 8-character prefixes up to date as values come and
    go: up to :data:`_REGEX_UP_TO` spellings it is searched with a regex rebuilt after a
    change, past that through the dictionary, whose search costs the same for 30 values
    or 1,024 and needs no rebuild. Every spelling of a remembered value is 8 characters
    or more.

    The log filter may search a book from any thread while the session's loop adds to
    it: adding and building hold a lock; a search reads what it needs once.
    """

    __slots__ = (
        "_cores",
        "_counts",
        "_dirty",
        "_escapish",
        "_index",
        "_limit",
        "_lock",
        "_regex",
        "_secrets",
        "_short",
    )

    def __init__(self, secrets: Iterable[str] = (), *, limit: int | None = None) -> None:
        self._limit = limit
        self._secrets: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._counts: dict[str, int] = {}  # each spelling: how many secrets have it
        self._cores: dict[str, frozenset[str]] = {}  # base64 cores: their alphabet
        self._dirty = False
        self._escapish = 0  # how many secrets hold an escape's first character
        self._regex: re.Pattern[str] | None = None
        self._short: re.Pattern[str] | None = None
        self._index: dict[str, list[str]] | None = {} if limit is not None else None
        self._lock = threading.Lock()
        for secret in secrets:
            self.add(secret)

    def __len__(self) -> int:
        return len(self._secrets)

    def __contains__(self, secret: object) -> bool:
        return secret in self._secrets

    @property
    def escapish(self) -> bool:
        """Whether a secret of this book holds ``%``, ``\\`` or ``&`` (see :data:`_FAMILIES`)."""
        return self._escapish > 0

    def add(self, secret: str) -> None:
        secret = str(secret)  # a Hidden is stored as the plain value
        if not secret:
            return
        with self._lock:
            if secret in self._secrets:
                self._secrets.move_to_end(secret)
                return
            plain, cores = _spellings(secret)
            spellings = tuple(plain | cores.keys())
            self._secrets[secret] = spellings
            for spelling in spellings:
                count = self._counts.get(spelling, 0)
                self._counts[spelling] = count + 1
                if not count:
                    self._indexed(spelling, add=True)
            self._cores.update(cores)
            self._escapish += _MAY_ESCAPE.search(secret) is not None
            if self._limit is not None and len(self._secrets) > self._limit:
                forgotten, gone = self._secrets.popitem(last=False)
                self._escapish -= _MAY_ESCAPE.search(forgotten) is not None
                for spelling in gone:
                    self._counts[spelling] -= 1
                    if not self._counts[spelling]:
                        del self._counts[spelling]
                        self._cores.pop(spelling, None)
                        self._indexed(spelling, add=False)

    def _indexed(self, spelling: str, *, add: bool) -> None:
        """Keep the prefix index (a bounded book's) in step, and mark the book for a build."""
        self._dirty = True
        if self._index is None or len(spelling) < _ANYWHERE:
            return
        prefix = spelling[:_ANYWHERE]
        if add:
            # A new list each time: a search on another thread may be reading the old one.
            bucket = [*self._index.get(prefix, ()), spelling]
            bucket.sort(key=len, reverse=True)  # longest first: a secret in a longer goes whole
            self._index[prefix] = bucket
        else:
            bucket = [s for s in self._index.get(prefix, ()) if s != spelling]
            if bucket:
                self._index[prefix] = bucket
            else:
                self._index.pop(prefix, None)

    def _build(self) -> None:
        spellings = sorted(self._counts, key=len, reverse=True)
        short = [s for s in spellings if len(s) < _ANYWHERE]
        long = [s for s in spellings if len(s) >= _ANYWHERE]
        # One regex (its search runs in C) unless a bounded book holds so many spellings
        # that compiling it would cost more than the index's search.
        if self._index is None or len(long) <= _REGEX_UP_TO:
            # Longest first, so that a secret inside a longer one goes whole.
            self._regex = re.compile("|".join(map(re.escape, long))) if long else None
        else:
            self._regex = None
        self._short = (
            re.compile("|".join(_ALONE.format(re.escape(s)) for s in short)) if short else None
        )
        self._dirty = False

    def find(self, text: str, spans: list[tuple[int, int]]) -> None:
        """Add to ``spans`` where a secret of this book stands in (decoded) ``text``."""
        if not self._secrets:
            return
        if self._dirty:
            with self._lock:
                if self._dirty:
                    self._build()
        regex, index, short, cores = self._regex, self._index, self._short, self._cores
        found: list[tuple[int, int]] = []
        if regex is not None:
            found += (m.span() for m in regex.finditer(text))
        elif index:
            found += _scan(text, index)
        if short is not None:
            spans += (m.span() for m in short.finditer(text))
        for start, end in found:
            alphabet = cores.get(text[start:end]) if cores else None
            if alphabet is not None:
                # Widen over the edge characters that mix the secret's bits with a
                # neighbour's, and over padding (see _b64_cores).
                if start > 0 and text[start - 1] in alphabet:
                    start -= 1
                if end < len(text) and text[end] in alphabet:
                    end += 1
                while end < len(text) and text[end] == "=":
                    end += 1
            spans.append((start, end))


def _scan(text: str, index: dict[str, list[str]]) -> Iterator[tuple[int, int]]:
    get = index.get
    at, stop = 0, len(text) - _ANYWHERE + 1
    while at < stop:
        bucket = get(text[at : at + _ANYWHERE])
        if bucket is not None:
            for spelling in bucket:
                if text.startswith(spelling, at):
                    yield at, at + len(spelling)
                    at += len(spelling)
                    break
            else:
                at += 1
        else:
            at += 1


def token_values(value: Any, *, depth: int = 0) -> Iterator[str]:
    """Each string found under a credential-like key anywhere in decoded JSON."""
    if depth > 64:  # a hostile answer nested without end: what is deeper is not quoted
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and str(key).lower() in _SECRET_KEYS:
                yield item
            elif isinstance(item, (dict, list)):
                yield from token_values(item, depth=depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from token_values(item, depth=depth + 1)


def _is_full_value(value: str) -> bool:
    return len(value) >= _ANYWHERE and _MASKED_VALUE.search(value) is None


def answer_token_values(envelope: Any) -> Iterator[str]:
    """The token values of a successful answer, where the SDK reads them (seeds 000-003,
    004): ``data.token``, ``data.items[].token`` and ``data[].token``.

    A targeted read, not :func:`token_values`' walk: it runs on every answer, and a
    listing page's hundred masked values must cost next to nothing.
    """
    if not isinstance(envelope, dict):
        return
    data = envelope.get("data")
    if isinstance(data, dict):
        value = data.get("token")
        if isinstance(value, str):
            yield value
        data = data.get("items")
    if isinstance(data, list):
        for item in data:
            if isinstance(item, dict):
                value = item.get("token")
                # Masked values are skipped here already: "*" is the common case.
                if isinstance(value, str) and "*" not in value:
                    yield value


class Redactor:
    """Removes secrets (and ``Bearer ...``) from text and decoded JSON.

    ``secrets`` are known for good (the API key); with ``remember=N`` the redactor also
    keeps the last N token values given to :meth:`learn` (never logged, never shown).
    """

    __slots__ = ("__weakref__", "_books", "_learned")

    def __init__(self, secrets: Iterable[str] = (), *, remember: int = 0) -> None:
        self._learned = _Book(limit=remember) if remember > 0 else None
        fixed = _Book(secrets)
        self._books: tuple[_Book, ...] = (
            (fixed, self._learned) if self._learned is not None else (fixed,)
        )

    def __repr__(self) -> str:
        return f"<Redactor of {sum(len(book) for book in self._books)} secrets>"

    def knows(self, secret: str) -> bool:
        return any(secret in book for book in self._books)

    def learn(self, values: Iterable[str]) -> None:
        """Remember each full token value in ``values`` (a masked one is not a secret)."""
        if self._learned is None:
            return
        for value in values:
            if isinstance(value, str) and _is_full_value(value):
                self._learned.add(value)

    def for_answer(self, body: Any) -> Redactor:
        """This redactor plus every token value found in ``body`` (decoded JSON or bytes).

        The full ones are also remembered for the rest of the session.
        """
        if isinstance(body, (bytes, bytearray)):
            try:
                body = json.loads(body)
            except (ValueError, RecursionError):
                return self  # not JSON: it was never parsed, and never quoted either
        found = {value for value in token_values(body) if value}
        self.learn(found)
        extra = {value for value in found if not self.knows(value)}
        if not extra:
            return self
        answer = object.__new__(Redactor)
        answer._learned = self._learned
        answer._books = (*self._books, _Book(extra))
        return answer

    def text(self, text: str) -> str:
        if len(text) > TEXT_CAP:
            left_out = len(text) - TEXT_CAP
            masked = self._text(text[: TEXT_CAP + _MARGIN])
            return f"{masked[:TEXT_CAP]}... [{left_out:,} more characters not shown]"
        return self._text(text)

    def _text(self, text: str) -> str:
        spans: list[tuple[int, int]] = []
        for book in self._books:
            book.find(text, spans)
        # Decoded too, and searched again: the original text holds a secret that looks
        # like an escape itself ("%00", "&amp;") as it is, and its escaped forms decoded.
        if _MAY_ESCAPE.search(text) is not None:
            self._find_decoded(text, spans)
        if spans:
            text = _mask(text, spans)
        return _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)

    def _find_decoded(self, text: str, spans: list[tuple[int, int]]) -> None:
        """Add to ``spans`` where a secret stands in ``text`` once its escapes are decoded."""
        each = any(book.escapish for book in self._books)
        for kinds in _decodings(text, each=each):
            decoded = _decoded(text, kinds)
            if decoded == text:
                continue
            found: list[tuple[int, int]] = []
            for book in self._books:
                book.find(decoded, found)
            if found:  # only now map the decoded text back to the original (the rare case)
                spans += _mapped(found, _decode(text, kinds)[1])

    def value(self, value: Any, *, depth: int = 0) -> Any:
        """A copy of decoded JSON with every string redacted (keys included).

        At most :data:`BODY_BUDGET` characters of it are kept (each string and key counts
        its length plus 16): past that, each further object, list or string is replaced
        by a note, so that the cost of redacting an error is bounded whatever the
        answer holds (README, "Redaction").
        """
        return self._value(value, depth, [BODY_BUDGET])

    def _value(self, value: Any, depth: int, budget: list[int]) -> Any:
        if budget[0] <= 0:
            return _NOT_SHOWN
        if isinstance(value, str):
            budget[0] -= len(value) + 16
            return self.text(value)
        if depth > 64:
            return None
        if isinstance(value, dict):
            copy: dict[str, Any] = {}
            for key, item in value.items():
                if budget[0] <= 0:
                    copy[_NOT_SHOWN] = _NOT_SHOWN
                    break
                key = str(key)
                budget[0] -= len(key) + 16
                copy[self.text(key)] = self._value(item, depth + 1, budget)
            return copy
        if isinstance(value, list):
            items = []
            for item in value:
                if budget[0] <= 0:
                    items.append(_NOT_SHOWN)
                    break
                items.append(self._value(item, depth + 1, budget))
            return items
        budget[0] -= 16
        return value

    def headers(self, headers: Mapping[str, str]) -> CIMultiDict[str]:
        return CIMultiDict((k, self.text(v)) for k, v in headers.items())

    def scrub(self, error: CellcastError) -> CellcastError:
        """Redact ``error`` in place, and cut from its chain what may quote an answer.

        Our errors in the chain are redacted; a suppressed ``__context__`` is dropped;
        anything else (a library's exception, whose text or args may hold response
        bytes) is cut off, except a builtin ``OSError``, which holds only the system's
        words. Every traceback in the chain is dropped: the frames below the public call
        hold the request's headers and the answer's bytes in their locals, which a
        traceback formatted with locals would show (README, "Redaction").
        """
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            if isinstance(current, CellcastError):
                self._scrub_one(current)
            current.__traceback__ = None
            if current.__suppress_context__:
                current.__context__ = None
            following = current.__cause__ or current.__context__
            if following is not None and not _may_chain(following):
                current.__cause__ = current.__context__ = None
                current.__suppress_context__ = True
                following = None
            current = following
        return error

    def _scrub_one(self, error: CellcastError) -> None:
        error.message = self.text(error.message)
        error.args = tuple(self.text(a) if isinstance(a, str) else a for a in error.args)
        if isinstance(error, APIError):
            if error.detail is not None:
                error.detail = self.text(error.detail)
            error.body = self.value(error.body)
            error.headers = _frozen_headers(self.headers(error.headers))
            if error.request_id is not None:
                error.request_id = self.text(error.request_id)


def _may_chain(exc: BaseException) -> bool:
    if isinstance(exc, CellcastError):
        return True
    return isinstance(exc, OSError) and type(exc).__module__ == "builtins"


# Every live session's redactor: the log filter masks all their secrets.
_live: weakref.WeakSet[Redactor] = weakref.WeakSet()


def register(redactor: Redactor) -> None:
    _live.add(redactor)
    _install_log_filter()


class LogRedactor(logging.Filter):
    """A filter on the ``cellcast_async`` logger: each record leaves with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        redactors = list(_live)
        message = record.getMessage()
        for redactor in redactors:
            message = redactor.text(message)
        if not redactors:
            message = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", message)
        record.msg = message
        record.args = None
        return True


def _install_log_filter() -> None:
    logger = logging.getLogger("cellcast_async")
    if not any(isinstance(f, LogRedactor) for f in logger.filters):
        logger.addFilter(LogRedactor())
