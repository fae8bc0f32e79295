"""The redactor on its own: spellings, short secrets, answers' token values, chains."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from cellcast_async import APIError, DecodeError, TransportError
from cellcast_async._redact import Redactor

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
