"""Microseconds per token to turn a listing page's bytes into objects (issue 5).

    python benchmarks/decode.py [--page-size 100] [--rounds 15]

One real page from the sandbox (seed 000's shape: the envelope, 100 tokens with a
nested sub-account), decoded again and again by:

- ``json.loads`` alone: the floor every dict-returning client pays (and, when orjson
  is installed, ``orjson.loads`` alone and with the check that keeps its results
  identical to ``json.loads``, for reference: the SDK does not use it);
- cellcast_async: the SDK's own path, ``read_envelope`` -> ``cellcast_page_format``
  -> ``build_page`` with the converter's token hook resolved once, as ``cc.tokens`` does;
- pydantic v2, equivalent models (benchmarks/_pydantic_models.py) three ways:
  ``model_validate`` per item and ``TypeAdapter(list[ApiToken]).validate_python`` after
  ``json.loads``, and ``model_validate_json`` on the whole body (parse and validate in
  one Rust call: the fastest honest pydantic path).

Each figure is the best of ``--rounds`` rounds, the decoders taking turns in each round.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp

try:
    import orjson
except ImportError:  # only for the reference rows
    orjson = None
from _pydantic_models import TOKEN_LIST, check_equivalent, validate_page_json
from _pydantic_models import ApiToken as PydanticToken

from cellcast_async import ApiToken, make_converter
from cellcast_async._pager import build_page, cellcast_page_format
from cellcast_async._protocol import read_envelope
from cellcast_async.sandbox import Sandbox

PATH = "/api/v1/apiClient/token"
HEADERS = {"Content-Type": "application/json; charset=utf-8"}


async def fetch_page(page_size: int) -> bytes:
    async with Sandbox(seed=0, tokens=page_size) as sb:
        headers = {"Authorization": f"Bearer {sb.api_key}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            params = {"page": "1", "limit": str(page_size)}
            async with session.get(sb.url + PATH, params=params) as response:
                return await response.read()


def decoders(body: bytes) -> dict[str, Callable[[], Any]]:
    hook = make_converter().get_structure_hook(ApiToken)

    def structure(item: Any) -> ApiToken:
        return hook(item, ApiToken)  # type: ignore[no-any-return]

    def ours() -> Any:
        envelope = read_envelope("GET", PATH, 200, HEADERS, body)
        return build_page(cellcast_page_format(envelope), 1, structure).items

    def pydantic_per_item() -> Any:
        return [PydanticToken.model_validate(i) for i in json.loads(body)["data"]["items"]]

    def pydantic_list_adapter() -> Any:
        return TOKEN_LIST.validate_python(json.loads(body)["data"]["items"])

    def pydantic_json() -> Any:
        return validate_page_json(body).items

    funcs: dict[str, Callable[[], Any]] = {"json_loads": lambda: json.loads(body)}
    if orjson is not None:
        loads = orjson.loads
        digits = bytes(48 if 48 <= i <= 57 else 46 for i in range(256))  # digit -> "0"

        def orjson_exact() -> Any:
            # orjson turns integers beyond 64 bits into floats; json keeps them ints. Any
            # run of 19 digits might be one, and then only json.loads gives the same result.
            if b"0" * 19 in body.translate(digits):
                return json.loads(body)
            return loads(body)

        funcs["orjson_loads"] = lambda: loads(body)
        funcs["orjson_exact"] = orjson_exact
    return {
        **funcs,
        "ours": ours,
        "pydantic_model_validate": pydantic_per_item,
        "pydantic_typeadapter": pydantic_list_adapter,
        "pydantic_validate_json": pydantic_json,
    }


LABELS = {
    "json_loads": "json.loads alone (dicts)",
    "orjson_loads": "orjson.loads alone (reference, not used)",
    "orjson_exact": "orjson.loads + the check identical results need (reference, not used)",
    "ours": "cellcast_async (json.loads + converter)",
    "pydantic_model_validate": "pydantic v2 model_validate per item (+ json.loads)",
    "pydantic_typeadapter": "pydantic v2 TypeAdapter(list[...]).validate_python (+ json.loads)",
    "pydantic_validate_json": "pydantic v2 model_validate_json (parse + validate in Rust)",
}


def measure(funcs: dict[str, Callable[[], Any]], tokens: int, rounds: int) -> dict[str, float]:
    """Best microseconds per token over ``rounds`` interleaved rounds."""
    best = dict.fromkeys(funcs, float("inf"))
    gc.collect()
    gc.disable()  # a collection landing in one decoder's round is noise, not its cost
    try:
        for _ in range(rounds):
            for name, func in funcs.items():
                loops = 20
                started = time.perf_counter()
                for _ in range(loops):
                    func()
                elapsed = time.perf_counter() - started
                best[name] = min(best[name], elapsed / loops / tokens * 1e6)
    finally:
        gc.enable()
    return best


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)

    body = asyncio.run(fetch_page(args.page_size))
    funcs = decoders(body)
    ours = funcs["ours"]()
    theirs = funcs["pydantic_validate_json"]()
    assert len(ours) == len(theirs) == args.page_size
    for mine, other in zip(ours, theirs, strict=True):
        check_equivalent(mine, other)

    per_token = measure(funcs, args.page_size, args.rounds)
    loads = per_token["json_loads"]
    per_token["pydantic_best"] = min(
        per_token[k]
        for k in ("pydantic_model_validate", "pydantic_typeadapter", "pydantic_validate_json")
    )
    print(
        f"\n## Decode: one page of {args.page_size} tokens ({len(body):,} bytes), "
        f"best of {args.rounds} rounds\n"
    )
    print("| decoder | µs/token | structuring alone (µs) | vs json.loads | vs ours |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for key, label in LABELS.items():
        if key not in per_token:
            continue  # orjson is not installed
        value = per_token[key]
        parse_only = ("json_loads", "orjson_loads", "orjson_exact", "pydantic_validate_json")
        alone = "-" if key in parse_only else f"{value - loads:.2f}"
        print(
            f"| {label} | {value:.2f} | {alone} | {value / loads:.2f}x "
            f"| {value / per_token['ours']:.2f}x |"
        )
    print(
        f"\nours / fastest pydantic v2 path: "
        f"{per_token['ours'] / per_token['pydantic_best']:.2f}x\n",
        flush=True,
    )
    return per_token


if __name__ == "__main__":
    main()
