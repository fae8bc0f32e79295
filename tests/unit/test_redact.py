"""The redactor on its own: spellings, short secrets, answers' token values, chains."""

from __future__ import annotations

import base64
import html
import json
import logging
import re
from collections.abc import Callable
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cellcast_async import APIError, DecodeError, TransportError
from cellcast_async._redact import (
    _FAMILIES,
    BODY_BUDGET,
    MASK,
    REMEMBERED,
    TEXT_CAP,
    Hidden,
    Redactor,
    _decode,
    _decoded,
    hidden,
    register,
)

KEY = 'ck_live_q"u\\o/te+eq=0123456789abcdef'


class TestText:
    """Every spelling of a secret is masked; other text is left alone."""

    @pytest.mark.parametrize(
        "spelling",
        [
            KEY,
            json.dumps(KEY)[1:-1],
            quote(KEY, safe=""),
            repr(KEY)[1:-1],
            repr(KEY.encode())[2:-1],
        ],
        ids=["plain", "json", "percent", "str-repr", "bytes-repr"],
    )
    def test_every_spelling(self, spelling: str) -> None:
        assert Redactor([KEY]).text(f"a{spelling}b") == "a****b"

    def test_any_bearer_credential(self) -> None:
        text = "got 'Authorization: bearer abc.def-ghi' and Bearer%20xyz"
        assert Redactor().text(text) == "got 'Authorization: bearer ****' and Bearer%20****"

    def test_a_short_secret_only_where_it_stands_alone(self) -> None:
        redactor = Redactor(["k"])
        assert redactor.text("GET /api/v1/apiClient/token: key k rejected") == (
            "GET /api/v1/apiClient/token: key **** rejected"
        )

    def test_a_long_secret_wherever_it_stands(self) -> None:
        assert Redactor(["ck_live_0123456789"]).text("xck_live_0123456789y") == "x****y"

    def test_values_and_keys_of_decoded_json(self) -> None:
        body = {"message": f"bad {KEY}", KEY: [KEY, 3, None]}
        assert Redactor([KEY]).value(body) == {"message": "bad ****", "****": ["****", 3, None]}


class TestForAnswer:
    """Token values found in the answer being handled are masked like the key."""

    def test_token_values_anywhere_in_the_json(self) -> None:
        body = json.dumps({"data": {"items": [{"token": "ccst_secret_value_1"}]}}).encode()
        redactor = Redactor([KEY]).for_answer(body)
        assert redactor.text("dup ccst_secret_value_1 and " + KEY) == "dup **** and ****"

    def test_a_body_that_is_not_json_adds_nothing(self) -> None:
        base = Redactor([KEY])
        assert base.for_answer(b"\xff not json") is base


class TestScrub:
    """An error is masked in place, and foreign exceptions are cut from its chain."""

    def test_api_error_fields(self) -> None:
        error = APIError(
            f"no {KEY}",
            status_code=400,
            detail=f"detail {KEY}",
            body={"message": KEY},
            headers={"X-Echo": KEY, "X-Request-Id": KEY},
        )
        Redactor([KEY]).scrub(error)
        assert (error.message, error.detail, error.body) == (
            "no ****",
            "detail ****",
            {"message": "****"},
        )
        assert dict(error.headers) == {"X-Echo": "****", "X-Request-Id": "****"}
        assert error.request_id == "****"
        assert error.args == ("no ****",)

    def test_foreign_causes_are_cut_and_os_errors_kept(self) -> None:
        error = DecodeError("broken")
        error.__context__ = ValueError(f"quoted {KEY}")
        Redactor([KEY]).scrub(error)
        assert error.__context__ is None
        assert error.__cause__ is None

        refused = TransportError("cannot connect", kind="connect")
        refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
        Redactor([KEY]).scrub(refused)
        assert isinstance(refused.__cause__, ConnectionRefusedError)


class TestEncodings:
    """One layer of escapes is decoded before the search; hex and base64 are searched too."""

    @pytest.mark.parametrize(
        "spelling",
        [
            quote(KEY, safe="").lower(),
            quote(KEY),  # '/' left unencoded
            json.dumps(KEY)[1:-1].replace("/", "\\/"),
            "".join(f"\\u{ord(c):04X}" for c in KEY),
            "".join(f"&#{ord(c)};" for c in KEY),
            "".join(f"&#X{ord(c):x}" for c in KEY),  # no ';', capital X
            html.escape(KEY),
            KEY.replace("/", "&sol;").replace("+", "&plus;").replace("=", "&equals;"),
            KEY.encode().hex(),
            KEY.encode().hex().upper(),
            base64.b64encode(KEY.encode()).decode(),
            base64.urlsafe_b64encode(KEY.encode()).decode().rstrip("="),
        ],
        ids=[
            "percent-lower",
            "percent-partial",
            "json-php",
            "json-all-u",
            "html-decimal",
            "html-hex-no-semicolon",
            "html-escape",
            "html-named",
            "hex",
            "hex-upper",
            "base64",
            "base64url-unpadded",
        ],
    )
    def test_each_spelling_is_one_mask(self, spelling: str) -> None:
        assert Redactor([KEY]).text(f"a {spelling} b") == "a **** b"

    def test_non_ascii_secret_percent_and_bytes_escaped(self) -> None:
        secret = "clé-secrète-\U0001f511-0123456789"
        redactor = Redactor([secret])
        for spelling in (
            quote(secret, safe="").lower(),
            json.dumps(secret)[1:-1],  # a surrogate pair for the key emoji
            repr(secret.encode())[2:-1],
            secret.encode().hex(),
        ):
            assert redactor.text(f"<{spelling}>") == "<****>"

    def test_text_without_a_secret_is_left_as_it_is(self) -> None:
        text = "a&amp;b %2F \\u0041 &bogus; &#99999999; \\x41 50% off \\"
        assert Redactor([KEY]).text(text) == text

    def test_a_short_secret_is_not_searched_in_hex_or_base64(self) -> None:
        redactor = Redactor(["k"])
        assert redactor.text("6b a w== key k%20") == "6b a w== key ****%20"


def _bits_hidden(secret: bytes, before: bytes, after: bytes, url: bool) -> None:
    """Every base64 character that holds a bit of ``secret`` is under the mask."""
    blob = before + secret + after
    encoded = (base64.urlsafe_b64encode if url else base64.b64encode)(blob).decode()
    masked = Redactor([secret.decode()]).text(f"[{encoded}]")[1:-1]
    start = masked.index(MASK)
    end = len(encoded) - (len(masked) - start - len(MASK))
    assert MASK not in masked[start + len(MASK) :]
    first_bit, last_bit = 8 * len(before), 8 * (len(before) + len(secret)) - 1
    holding = [j for j in range(len(encoded)) if 6 * j <= last_bit and 6 * j + 5 >= first_bit]
    assert start <= holding[0]
    assert holding[-1] < end
    # ... and at most one character that holds no bit of it on each side, plus padding.
    assert holding[0] - start <= 1
    assert end - holding[-1] - 1 <= 1 + encoded.count("=")


class TestBase64Alignment:
    """A secret inside a larger base64 blob, at each of the three byte offsets."""

    @pytest.mark.parametrize("url", [False, True], ids=["base64", "base64url"])
    @pytest.mark.parametrize("after", range(4))
    @pytest.mark.parametrize("before", range(4))
    def test_inside_a_blob(self, before: int, after: int, url: bool) -> None:
        secret = b"ck_live_9f2a7c4e1b8d6f3a0e5c9b7d"
        _bits_hidden(secret, b"\xfb" * before, b"\xff" * after, url)

    def test_basic_auth(self) -> None:
        header = "Basic " + base64.b64encode(b"account:" + KEY.encode()).decode()
        # The characters that hold only "account:" stay; from the one that mixes in the
        # key's first bits, the mask.
        account = base64.b64encode(b"account:").decode()[:10]
        assert Redactor([KEY]).text(header) == f"Basic {account}****"


class TestRemembered:
    """Token values learned from answers: bounded, least recently seen forgotten first."""

    def test_learned_values_are_masked_and_masked_values_not_learned(self) -> None:
        redactor = Redactor([KEY], remember=4)
        redactor.learn(["ccst_full_value_000001", "ccst_****1234", "eyJhbGci...", "short"])
        assert redactor.text("ccst_full_value_000001 ccst_****1234 short") == (
            "**** ccst_****1234 short"
        )
        assert repr(redactor) == "<Redactor of 2 secrets>"

    def test_the_bound(self) -> None:
        redactor = Redactor([KEY], remember=3)
        values = [f"ccst_full_value_{n:06d}" for n in range(5)]
        redactor.learn(values[:3])
        redactor.learn([values[0]])  # seen again: the most recent
        redactor.learn(values[3:])
        # Kept: values[0] (seen again), [3] and [4]; forgotten: [1] and [2].
        assert redactor.text(" ".join(values)) == f"**** {values[1]} {values[2]} **** ****"
        assert redactor.text(KEY) == "****"  # the key is never forgotten

    def test_the_session_default_bound(self) -> None:
        redactor = Redactor([KEY], remember=REMEMBERED)
        values = [f"ccst_{n:06d}_{'x' * 30}" for n in range(REMEMBERED + 1)]
        redactor.learn(values)
        assert redactor.text(values[0]) == values[0]
        assert redactor.text(values[1]) == MASK
        assert redactor.text(f"<{quote(values[-1]).lower()}>") == "<****>"

    def test_many_secrets_search_like_few(self) -> None:
        """Past a few hundred spellings the prefix index is used: same answers."""
        values = [base64.urlsafe_b64encode(bytes([n]) * 33).decode() for n in range(200)]
        few, many = Redactor(values[:3]), Redactor(remember=REMEMBERED)
        many.learn(values)
        for value in values[:3]:
            for text in (value, value.encode().hex(), base64.b64encode(value.encode()).decode()):
                assert few.text(f"x {text} y") == many.text(f"x {text} y") == "x **** y"

    def test_for_answer_learns_the_full_values(self) -> None:
        redactor = Redactor([KEY], remember=8)
        body = json.dumps({"data": {"token": "ccst_full_value_000009"}}).encode()
        redactor.for_answer(body)
        assert redactor.text("again ccst_full_value_000009") == "again ****"

    def test_log_records_mask_learned_values(self, caplog: pytest.LogCaptureFixture) -> None:
        redactor = Redactor([KEY], remember=8)
        register(redactor)
        redactor.learn(["ccst_full_value_000042"])
        with caplog.at_level(logging.DEBUG, logger="cellcast_async"):
            logging.getLogger("cellcast_async").debug("saw %s", "ccst_full_value_000042")
        assert [r.getMessage() for r in caplog.records] == ["saw ****"]


class TestHidden:
    """A str whose repr is masked, and the value itself everywhere else."""

    def test_repr_and_value(self) -> None:
        value = Hidden(KEY)
        assert repr(value) == "'****'"
        assert repr(value[:10]) == "'****'"
        assert repr({"Authorization": value}) == "{'Authorization': '****'}"
        assert f"Bearer {value}" == f"Bearer {KEY}"
        assert type(str(value)) is str
        assert str(value) == KEY
        assert hidden(None) is None


class TestBoundedCost:
    """A huge text is cut once masked; a huge body is kept up to a budget."""

    def test_a_secret_across_the_cut_shows_no_part(self) -> None:
        text = "x" * (TEXT_CAP - 10) + KEY + "y" * 50_000
        left_out = len(text) - TEXT_CAP
        assert Redactor([KEY]).text(text) == (
            "x" * (TEXT_CAP - 10) + MASK + "y" * 6 + f"... [{left_out:,} more characters not shown]"
        )

    def test_a_body_past_the_budget(self) -> None:
        body = {"message": KEY, "items": [f"{n:099d}" for n in range(20_000)]}
        kept = Redactor([KEY]).value(body)
        assert kept["message"] == MASK
        items = kept["items"]
        assert items[:3] == [f"{n:099d}" for n in range(3)]
        assert items[-1] == "... [the rest of the answer is not shown: over 1 MiB of text]"
        # Each string counts its length plus 16: two keys and the key's value came first,
        # then items until the budget is spent (the last one may pass it).
        before = (len("message") + 16) + (len(KEY) + 16) + (len("items") + 16)
        assert len(items) - 1 == -(-(BODY_BUDGET - before) // (99 + 16))


_ENCODERS: dict[str, Callable[[str], str]] = {
    "plain": lambda s: s,
    "percent-lower": lambda s: re.sub("%..", lambda m: m.group().lower(), quote(s, safe="")),
    "json-php": lambda s: json.dumps(s)[1:-1].replace("/", "\\/"),
    "json-all-u": lambda s: "".join(f"\\u{ord(c):04x}" for c in s),
    "html-hex": lambda s: "".join(f"&#x{ord(c):x};" for c in s),
    "html-escape": html.escape,
    "hex": lambda s: s.encode().hex(),
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64url": lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
}


class TestAnySecret:
    """Any secret of 8 or more printable characters, in any encoding, between any words."""

    @settings(max_examples=300, deadline=None)
    @given(
        secret=st.text(
            st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=8, max_size=60
        ),
        encoding=st.sampled_from(sorted(_ENCODERS)),
        before=st.sampled_from(["", "key ", "x=", "said: '", "<b>"]),
        after=st.sampled_from(["", " rejected", "&y=1", "'", "</b>"]),
    )
    # A secret holding what looks like another family's escape: "\\b" beside an entity.
    @example(secret="00000'\\b", encoding="html-escape", before="", after="")
    @example(secret='ab%41cd"ef', encoding="json-php", before="x=", after="&y=1")
    @example(secret="ab%41<cd>ef", encoding="html-escape", before="<b>", after="</b>")
    def test_masked(self, secret: str, encoding: str, before: str, after: str) -> None:
        spelled = _ENCODERS[encoding](secret)
        masked = Redactor([secret]).text(f"{before}{spelled}{after}")
        assert MASK in masked
        assert spelled not in masked
        assert secret not in masked

    @settings(max_examples=300, deadline=None)
    @given(text=st.text(st.sampled_from("%\\&#;xuU09afAF\"/'lampquotX "), max_size=40))
    @pytest.mark.parametrize("kinds", [None, *(kinds for _, kinds in _FAMILIES)])
    def test_both_decoders_agree(self, text: str, kinds: frozenset[str] | None) -> None:
        """The search's decoder and the masking map's decoder read a text alike, with
        every family of escapes and with each alone."""
        decoded, segments = _decode(text, kinds)
        assert _decoded(text, kinds) == decoded
        assert [s[0] for s in segments] == sorted(s[0] for s in segments)
        if text:
            assert segments[0][1] == 0
            assert segments[-1][2] == len(text)
