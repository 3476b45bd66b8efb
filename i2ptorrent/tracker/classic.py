"""Classic HTTP announce and scrape in the I2P convention, sans-I/O.

Queries are parsed from the raw query string, because info_hash and peer_id are percent-encoded
binary that a text decoder would corrupt. Replies are bencoded; compact peer lists are 32-byte
destination hashes (what i2psnark, BiglyBT and libtorrent expect from an I2P tracker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable
from urllib.parse import unquote_to_bytes

from ..wire.bencode import bencode
from .identity import PeerIdentity, hash_to_b32
from .messages import EVENTS, TrackerProtocolError

MAX_QUERY_LENGTH = 4096
FAKE_PORT = 6881  # I2P peers have no port; non-compact replies carry the conventional placeholder


@dataclass(frozen=True, slots=True)
class HttpAnnounce:
    info_hash: str  # 20 bytes as latin-1 text, the same key the WebSocket side uses
    peer_id: str
    event: str
    left: float
    numwant: int
    compact: bool
    invite: str | None = None


def parse_query(raw: str, max_length: int = MAX_QUERY_LENGTH) -> dict[str, list[bytes]]:
    """'a=1&b=%00..' -> {'a': [b'1'], 'b': [b'\\x00..']}, bounded in size and count."""
    if len(raw) > max_length:
        raise TrackerProtocolError("query too long")
    out: dict[str, list[bytes]] = {}
    if not raw:
        return out
    for part in raw.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        try:
            name = unquote_to_bytes(key.replace("+", " ")).decode("ascii")
        except UnicodeDecodeError:
            raise TrackerProtocolError("invalid query") from None
        out.setdefault(name, []).append(unquote_to_bytes(value.replace("+", " ")))
    return out


def _one(params: dict[str, list[bytes]], key: str) -> bytes | None:
    values = params.get(key)
    return values[0] if values else None


def _id20(params: dict[str, list[bytes]], key: str) -> str:
    value = _one(params, key)
    if value is None or len(value) != 20:
        raise TrackerProtocolError(f"invalid {key}")
    return value.decode("latin-1")


def _int(params: dict[str, list[bytes]], key: str, default: int) -> int:
    value = _one(params, key)
    if value is None or value == b"":
        return default
    if len(value) > 20 or not value.lstrip(b"-").isdigit():
        raise TrackerProtocolError(f"invalid {key}")
    return int(value)


def parse_announce(raw_query: str, max_numwant: int) -> HttpAnnounce:
    params = parse_query(raw_query)
    info_hash = _id20(params, "info_hash")
    peer_id = _id20(params, "peer_id")
    event_raw = _one(params, "event") or b"update"
    event = event_raw.decode("latin-1")
    if event in ("empty", "none", ""):
        event = "update"
    if event not in EVENTS:
        raise TrackerProtocolError("invalid event")
    left_value = _one(params, "left")
    left = float(_int(params, "left", 0)) if left_value not in (None, b"") else float("inf")
    numwant = max(0, min(_int(params, "numwant", 50), max_numwant))
    compact = _int(params, "compact", 1) != 0
    invite_raw = _one(params, "invite")
    invite = invite_raw.decode("latin-1")[:128] if invite_raw else None
    # `ip` and `port` are accepted and ignored: the peer's identity is the destination SAM reported.
    return HttpAnnounce(info_hash=info_hash, peer_id=peer_id, event=event, left=left,
                        numwant=numwant, compact=compact, invite=invite)


def parse_scrape(raw_query: str, max_scrape: int) -> tuple[str, ...]:
    params = parse_query(raw_query)
    hashes = params.get("info_hash", [])
    if len(hashes) > max_scrape:
        raise TrackerProtocolError("too many info_hash values")
    for value in hashes:
        if len(value) != 20:
            raise TrackerProtocolError("invalid info_hash")
    return tuple(dict.fromkeys(h.decode("latin-1") for h in hashes))


def failure(reason: str) -> bytes:
    return bencode({b"failure reason": reason.encode("utf-8")})


def announce_reply(interval: int, complete: int, incomplete: int,
                   peers: Iterable[tuple[str, PeerIdentity]], compact: bool) -> bytes:
    """`peers` are (peer_id, identity) pairs; peers without an I2P hash cannot be listed."""
    reply: dict[bytes, object] = {b"interval": interval, b"complete": complete, b"incomplete": incomplete}
    if compact:
        reply[b"peers"] = b"".join(h for _, ident in peers if (h := ident.dest_hash) is not None)
    else:
        reply[b"peers"] = [
            {b"ip": (ident.destination + ".i2p" if ident.destination else ident.name).encode("ascii"),
             b"peer id": peer_id.encode("latin-1"), b"port": FAKE_PORT}
            for peer_id, ident in peers if ident.is_i2p
        ]
    return bencode(reply)


def scrape_reply(files: dict[str, tuple[int, int, int]]) -> bytes:
    return bencode({b"files": {
        h.encode("latin-1"): {b"complete": c, b"incomplete": i, b"downloaded": d}
        for h, (c, i, d) in files.items()}})


def parse_compact_peers(data: bytes) -> list[str]:
    """A compact I2P peer list -> '.b32.i2p' names (the client side of `announce_reply`)."""
    if len(data) % 32:
        raise TrackerProtocolError("compact peers is not a multiple of 32 bytes")
    return [hash_to_b32(data[i:i + 32]) for i in range(0, len(data), 32)]
