"""Who a tracker request comes from: the destination the transport (SAM) reported, never a claim."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

B32_SUFFIX = ".b32.i2p"
B32_LENGTH = 52  # base32 of a 32-byte SHA-256, unpadded


def b32_to_hash(name: str) -> bytes | None:
    """'<52 chars>.b32.i2p' -> the 32-byte destination hash; None for anything else."""
    if not name.endswith(B32_SUFFIX) or len(name) != B32_LENGTH + len(B32_SUFFIX):
        return None
    try:
        return base64.b32decode(name[:B32_LENGTH].upper() + "====")
    except (binascii.Error, ValueError):
        return None


def hash_to_b32(digest: bytes) -> str:
    if len(digest) != 32:
        raise ValueError("a destination hash has 32 bytes")
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower() + B32_SUFFIX


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """A peer as the transport knows it.

    `name` is the caller's `.b32.i2p` on I2P (or a 'loopback:host:port' label when serving plain TCP
    for tests); `destination` is its full base64 destination when SAM gave it.
    """

    name: str
    destination: str | None = None

    @property
    def dest_hash(self) -> bytes | None:
        return b32_to_hash(self.name)

    @property
    def is_i2p(self) -> bool:
        return self.dest_hash is not None

    def origin(self) -> dict[str, str]:
        """Fields added to relayed offers/answers so the other side knows where to connect."""
        if not self.is_i2p:
            return {}
        fields = {"i2p_b32": self.name}
        if self.destination:
            fields["i2p_dest"] = self.destination
        return fields
