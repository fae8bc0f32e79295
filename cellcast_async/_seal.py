"""Checkpoints are sealed: a MAC keyed by a slow derivation of the session's API key.

A checkpoint (``pager.checkpoint()``, the CLI's ``audit --checkpoint FILE``) is read back
from wherever it was stored, so it is untrusted input (README "Long audits"). Each one
carries an HMAC-SHA256 of its content under a key derived from the API key with scrypt,
and a short key id derived the same way:

- an edited checkpoint fails the MAC, and one made under another API key (another
  account) names another key id: both are refused before anything is sent;
- neither the key nor anything cheap to test a guess against is written: checking one
  guess of the API key against a checkpoint costs one scrypt (16 MiB, 50-200 ms).

The derivation runs once per API key and process, on the first checkpoint made or read;
what it yields is kept in memory only, like the key itself.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict
from typing import Final

__all__ = ["CheckpointKey"]

# scrypt's cost (RFC 7914's interactive setting): 16 MiB and 50-200 ms a derivation.
_SCRYPT_N: Final = 2**14
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_SALT: Final = b"cellcast_async checkpoint key, v1"
_KEY_ID: Final = b"cellcast_async checkpoint key id"
_CACHED: Final = 16

# Derived keys by a digest of the API key, so that sessions of one process on one key
# derive once. Memory only, bounded, never logged.
_derived: OrderedDict[bytes, bytes] = OrderedDict()
_lock = threading.Lock()


def _derive(api_key: str) -> bytes:
    secret = api_key.encode("utf-8")
    slot = hashlib.sha256(secret).digest()
    with _lock:
        known = _derived.get(slot)
        if known is not None:
            _derived.move_to_end(slot)
            return known
    key = hashlib.scrypt(secret, salt=_SALT, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    with _lock:
        _derived[slot] = key
        while len(_derived) > _CACHED:
            _derived.popitem(last=False)
    return key


class CheckpointKey:
    """Seals and checks checkpoints for one API key; derived on first use."""

    __slots__ = ("_api_key", "_guard", "_key")

    def __init__(self, api_key: str) -> None:
        self._api_key: str | None = api_key
        self._key: bytes | None = None
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return "<CheckpointKey>"

    def _secret(self) -> bytes:
        key = self._key
        if key is None:
            with self._guard:  # one derivation, whichever thread asks first
                key = self._key
                if key is None:
                    assert self._api_key is not None
                    key = self._key = _derive(self._api_key)
                    self._api_key = None  # the derived key is all it needs from now on
        return key

    @property
    def key_id(self) -> str:
        """16 hex digits naming the key, as costly to test a guess against as the MAC."""
        return hmac.new(self._secret(), _KEY_ID, hashlib.sha256).hexdigest()[:16]

    def mac(self, purpose: str, content: bytes) -> str:
        """HMAC-SHA256 of ``content`` for ``purpose`` (one kind of checkpoint), in hex."""
        message = purpose.encode("ascii") + b"\x00" + content
        return hmac.new(self._secret(), message, hashlib.sha256).hexdigest()

    def check(self, purpose: str, content: bytes, mac: object) -> bool:
        """Whether ``mac`` is this key's MAC of ``content`` (compared in constant time)."""
        return isinstance(mac, str) and hmac.compare_digest(
            self.mac(purpose, content).encode("ascii"), mac.encode("utf-8", "replace")
        )
