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
