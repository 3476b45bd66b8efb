"""Who a tracker request comes from: the destination the transport (SAM) reported, never a claim."""

from __future__ import annotations

from dataclasses import dataclass

from ..transport.sam_protocol import b32_from_hash as hash_to_b32
from ..transport.sam_protocol import hash_from_b32

__all__ = ["PeerIdentity", "b32_to_hash", "hash_to_b32"]


def b32_to_hash(name: str) -> bytes | None:
    """'<52 chars>.b32.i2p' -> the 32-byte destination hash; None for anything else."""
    try:
        return hash_from_b32(name)
    except ValueError:
        return None


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
