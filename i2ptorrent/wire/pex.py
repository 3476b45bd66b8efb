"""i2p_pex: peer exchange between I2P BitTorrent clients (a BEP 10 extension; libtorrent >= 2.1.0,
i2psnark, XD, BiglyBT).

The body is a bencoded dict like BEP 11's ut_pex, but `added` and `dropped` hold concatenated 32-byte
destination hashes (SHA-256 of the binary destination: exactly what a .b32.i2p address encodes) instead
of IP:port pairs, so no IP address ever travels. `added.f` carries one flag byte per added peer; no
flag applies to I2P peers, so we send zeros and ignore what we get.

Bounds: we send at most MAX_PEX_PEERS added and dropped each (libtorrent's limit too) and read at most
MAX_PEX_READ of each; trailing bytes short of a whole hash are ignored, as libtorrent does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..transport.sam_protocol import b32_from_hash as hash_to_b32
from ..transport.sam_protocol import hash_from_b32 as b32_to_hash
from .bencode import bdecode, bencode
from .errors import ProtocolError
from .events import Event

I2P_PEX = "i2p_pex"
LOCAL_I2P_PEX_ID = 9  # the id peers must use for i2p_pex messages they send us
HASH_LEN = 32
MAX_PEX_PEERS = 50
MAX_PEX_READ = 200

__all__ = ["I2P_PEX", "LOCAL_I2P_PEX_ID", "MAX_PEX_PEERS", "MAX_PEX_READ", "PexReceived", "b32_to_hash",
           "decode_pex", "encode_pex", "hash_to_b32"]


@dataclass(frozen=True)
class PexReceived(Event):
    """The peer's i2p_pex message: .b32.i2p addresses it is now connected to / no longer connected to."""

    added: tuple[str, ...]
    dropped: tuple[str, ...]


def encode_pex(added: Iterable[str], dropped: Iterable[str] = ()) -> bytes:
    """The message body; at most MAX_PEX_PEERS of each list are kept (the first ones)."""
    add = [b32_to_hash(a) for a in list(added)[:MAX_PEX_PEERS]]
    drop = [b32_to_hash(d) for d in list(dropped)[:MAX_PEX_PEERS]]
    return bencode({"added": b"".join(add), "added.f": bytes(len(add)), "dropped": b"".join(drop)})


def _hashes(field: object, what: str) -> tuple[str, ...]:
    if field is None:
        return ()
    if not isinstance(field, bytes):
        raise ProtocolError(f"i2p_pex '{what}' is not a byte string")
    count = min(len(field) // HASH_LEN, MAX_PEX_READ)
    seen: dict[str, None] = {}
    for i in range(count):
        seen[hash_to_b32(field[i * HASH_LEN : (i + 1) * HASH_LEN])] = None
    return tuple(seen)


def decode_pex(payload: bytes) -> PexReceived:
    """Parse a body; ProtocolError when it is not a dict of byte strings (duplicates are dropped)."""
    data = bdecode(payload)
    if not isinstance(data, dict):
        raise ProtocolError("i2p_pex message is not a dict")
    return PexReceived(_hashes(data.get(b"added"), "added"), _hashes(data.get(b"dropped"), "dropped"))
