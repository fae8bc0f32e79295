"""``python -m cellcast_async.sandbox``: serve a sandbox until SIGTERM/SIGINT.

Once listening it prints exactly one line of JSON to stdout and flushes it:
``{"url": ..., "api_key": ..., "sub_account_ids": [...]}``. Nothing else is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ._faults import FAULT_KINDS, Faults
from ._server import Sandbox, serve

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"choose from {','.join(sorted(FAULT_KINDS))}")
    return kinds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cellcast_async.sandbox",
        description="Serve a local Cellcast token API sandbox on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1", choices=_LOOPBACK_HOSTS)
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=0, help="demo data seed")
    parser.add_argument("--tokens", type=_non_negative_int, default=300)
    parser.add_argument("--sub-accounts", type=_non_negative_int, default=3)
    parser.add_argument("--api-key", default=None, help="default: derived from --seed")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--latency", type=_non_negative_float, default=0.0, help="seconds")
    faults.add_argument("--latency-jitter", type=_non_negative_float, default=0.0)
    faults.add_argument("--error-rate", type=_rate, default=0.0, help="0.0-1.0")
    faults.add_argument("--error-kinds", type=_kinds, default=Faults().kinds, metavar="K,K")
    faults.add_argument("--retry-after", type=_non_negative_float, default=0.0)
    faults.add_argument("--fault-seed", type=int, default=0)
    faults.add_argument("--mutations-only", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    faults = Faults(
        latency=args.latency,
        latency_jitter=args.latency_jitter,
        error_rate=args.error_rate,
        kinds=args.error_kinds,
        retry_after=args.retry_after,
        seed=args.fault_seed,
        mutations_only=args.mutations_only,
    )

    def ready(sb: Sandbox) -> None:
        line = {"url": sb.url, "api_key": sb.api_key, "sub_account_ids": list(sb.sub_account_ids)}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    try:
        serve(
            host=args.host,
            port=args.port,
            seed=args.seed,
            tokens=args.tokens,
            faults=faults,
            api_key=args.api_key,
            ready=ready,
            sub_accounts=args.sub_accounts,
        )
    except (OSError, ValueError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
