"""What tracker instances that share their swarms tell each other, sans-I/O.

With several instances, each core keeps a full local view of every swarm and records what its own
peers changed as `PeerChange`s; the store adapter (redis_store.py) writes them to the shared store and
feeds every instance's changes back through `TrackerCore.apply`. Offers and answers for a peer whose
socket is on another instance leave the core as `RemoteOffer` / `RemoteAnswer` and arrive there
through `TrackerCore.deliver_offer` / `deliver_answer`. Invites are spent in the store: `Redeem`
asks the adapter, `TrackerCore.redeemed` carries the verdict back.

Times in these records are the core's own clock (monotonic); the adapter converts them to wall-clock
time at the store boundary, because monotonic clocks of different processes are not comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .core import AccessPolicy
    from .server import TrackerServer


@dataclass(frozen=True, slots=True)
class PeerChange:
    """One peer's new state in one swarm (`removed`: it left). `home`/`conn`: where its socket is."""

    info_hash: str
    peer_id: str
    websocket: bool
    home: str
    conn: int | None
    name: str = ""
    destination: str | None = None
    complete: bool = False
    seen: float = 0.0
    completed: bool = False  # this announce counted one more download (added once, not replayed)
    removed: bool = False


@dataclass(frozen=True, slots=True)
class RemoteOffer:
    """An offer for `target_peer_id` on connection `target_conn` of instance `home`."""

    home: str
    target_conn: int
    target_peer_id: str
    info_hash: str
    offer_id: str
    from_home: str
    from_conn: int
    from_peer_id: str
    frame: bytes


@dataclass(frozen=True, slots=True)
class RemoteAnswer:
    """An answer for `to_peer_id` on connection `target_conn` of instance `home`."""

    home: str
    target_conn: int
    info_hash: str
    to_peer_id: str
    frame: bytes


@dataclass(frozen=True, slots=True)
class Redeem:
    """Spend `token` in the shared store for `name`; the answer goes to `TrackerCore.redeemed`."""

    conn_id: int
    token: str
    name: str


Relay = RemoteOffer | RemoteAnswer | Redeem


class SwarmStore(Protocol):
    """What a TrackerServer needs of a shared store (redis_store.RedisSwarmStore is the one we have).

    Without a store, the core's own view is the whole store: the in-memory default, one instance.
    """

    instance: str  # this instance's id among those sharing the store
    instances: dict[str, dict[str, Any]]  # the live instances (heartbeats), by id: for status pages
    access: "AccessPolicy"  # the shared allowlist (its `shared = True`: invites are spent by `spend`)

    async def start(self, server: "TrackerServer") -> None: ...  # load the swarms, then follow them
    async def close(self) -> None: ...  # stop carrying; our peers keep their place in the store
    def wake(self) -> None: ...  # the core left changes or outbox items: carry them
    async def sweep(self, before: float) -> None: ...  # expire peers not seen since `before` (core clock)
    async def spend(self, token: str, name: str) -> bool: ...  # an invite, atomically, for all instances
