"""The BEP 3 handshake: `\\x13BitTorrent protocol`, 8 reserved bytes, info-hash, peer id (68 bytes).

Reserved bits follow what i2psnark, libtorrent, BiglyBT and WebTorrent read: reserved[5] & 0x10 is the BEP 10
extension protocol and reserved[7] & 0x04 the BEP 6 fast extension. We never set reserved[7] & 0x01 (DHT):
we are not a DHT node, and on I2P a clearnet DHT would leak.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ProtocolError

PROTOCOL = b"\x13BitTorrent protocol"
HANDSHAKE_LEN = len(PROTOCOL) + 8 + 20 + 20  # 68
INFO_HASH_END = len(PROTOCOL) + 8 + 20  # 48: enough bytes for an acceptor to route the connection

EXTENSION_BYTE, EXTENSION_BIT = 5, 0x10
FAST_BYTE, FAST_BIT = 7, 0x04
DHT_BYTE, DHT_BIT = 7, 0x01


def make_reserved(*, extensions: bool, fast: bool) -> bytes:
    """The 8 reserved bytes we send (never the DHT bit)."""
    reserved = bytearray(8)
    if extensions:
        reserved[EXTENSION_BYTE] |= EXTENSION_BIT
    if fast:
        reserved[FAST_BYTE] |= FAST_BIT
    return bytes(reserved)


@dataclass(frozen=True)
class Handshake:
    reserved: bytes
    info_hash: bytes
    peer_id: bytes

    @property
    def extensions(self) -> bool:
        return bool(self.reserved[EXTENSION_BYTE] & EXTENSION_BIT)

    @property
    def fast(self) -> bool:
        return bool(self.reserved[FAST_BYTE] & FAST_BIT)

    @property
    def dht(self) -> bool:
        return bool(self.reserved[DHT_BYTE] & DHT_BIT)

    def encode(self) -> bytes:
        return PROTOCOL + self.reserved + self.info_hash + self.peer_id


def _check_protocol(prefix: bytes) -> None:
    n = min(len(prefix), len(PROTOCOL))
    if prefix[:n] != PROTOCOL[:n]:
        raise ProtocolError("not a BitTorrent handshake (bad protocol string)")


def peek_info_hash(prefix: bytes) -> bytes | None:
    """The info-hash an incoming connection asks for, or None until 48 bytes have arrived.

    Lets an accept loop route a connection to its torrent before building a PeerWire (feed the same bytes to
    that PeerWire afterwards). Raises ProtocolError as soon as the bytes cannot be a BitTorrent handshake.
    """
    prefix = bytes(prefix[:INFO_HASH_END])
    _check_protocol(prefix)
    if len(prefix) < INFO_HASH_END:
        return None
    return prefix[len(PROTOCOL) + 8 : INFO_HASH_END]


def parse_handshake(data: bytes) -> Handshake:
    """Parse exactly 68 handshake bytes."""
    if len(data) != HANDSHAKE_LEN:
        raise ProtocolError(f"handshake must be {HANDSHAKE_LEN} bytes, got {len(data)}")
    data = bytes(data)
    _check_protocol(data)
    start = len(PROTOCOL)
    return Handshake(data[start : start + 8], data[start + 8 : start + 28], data[start + 28 :])
