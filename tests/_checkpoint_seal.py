"""Sealing checkpoints in tests: what someone holding the API key can do.

A checkpoint an attacker edits fails its MAC; tests that need a checkpoint with a chosen
field (to check the validation behind the MAC) seal it again with the key, as only the
key's holder can.
"""

from __future__ import annotations

import json
from typing import Any

from cellcast_async._seal import CheckpointKey
from cellcast_async._walk import _canonical

WALK = "cellcast_async.walk"


def reseal(outer: dict[str, Any], api_key: str) -> str:
    """``outer`` (a parsed pager checkpoint) sealed again under ``api_key``."""
    key = CheckpointKey(api_key)
    body = {k: v for k, v in outer.items() if k != "mac"}
    body["key"] = key.key_id
    return json.dumps({**body, "mac": key.mac(WALK, _canonical(body))}, separators=(",", ":"))


def reseal_audit(body: dict[str, Any], api_key: str) -> str:
    """``body`` (a parsed ``audit --checkpoint`` file) sealed again under ``api_key``."""
    from cellcast_async._cli._checkpoint import FORMAT, _canonical

    key = CheckpointKey(api_key)
    inner = {k: v for k, v in body.items() if k != "mac"}
    inner["key"] = key.key_id
    return json.dumps({**inner, "mac": key.mac(FORMAT, _canonical(inner))}, sort_keys=True)
