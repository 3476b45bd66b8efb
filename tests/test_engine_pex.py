"""The swarm's i2p_pex policy (sans-I/O): full list first, then diffs, at most once a minute, nothing when
nothing changed; incoming messages rate-limited per peer."""

from __future__ import annotations

import hashlib

from i2ptorrent.engine.pex import PexPolicy
from i2ptorrent.transport.sam_protocol import b32_from_hash
from i2ptorrent.wire import MAX_PEX_PEERS


def b32(n: int) -> str:
    return b32_from_hash(hashlib.sha256(str(n).encode()).digest())


def test_full_list_then_diffs_at_most_once_a_minute() -> None:
    pex = PexPolicy(send_interval=60, first_delay=2)
    assert pex.due("p", 0.0, [b32(1)], own=b32(0)) is None  # no i2p_pex from that peer
    pex.peer_ready("p", 0.0)
    assert pex.due("p", 1.0, [b32(1), b32(2)], own=b32(0)) is None  # too early
    assert pex.due("p", 2.0, [b32(0), b32(1), b32(2)], own=b32(0)) == ([b32(1), b32(2)], [])
    assert pex.due("p", 30.0, [b32(1), b32(3)], own=b32(0)) is None  # a minute has not passed
    assert pex.due("p", 62.0, [b32(1), b32(3)], own=b32(0)) == ([b32(3)], [b32(2)])
    assert pex.due("p", 200.0, [b32(1), b32(3)], own=b32(0)) is None  # nothing changed: nothing sent
    pex.forget("p")
    assert pex.due("p", 300.0, [b32(1)], own=b32(0)) is None


def test_messages_are_bounded() -> None:
    pex = PexPolicy(first_delay=0)
    pex.peer_ready("p", 0.0)
    many = [b32(i) for i in range(3 * MAX_PEX_PEERS)]
    added, dropped = pex.due("p", 0.0, many, own="x") or ([], [])
    assert added == many[:MAX_PEX_PEERS] and dropped == []
    added, _ = pex.due("p", 61.0, many, own="x") or ([], [])
    assert added == many[MAX_PEX_PEERS : 2 * MAX_PEX_PEERS]


def test_incoming_is_rate_limited_per_peer() -> None:
    pex = PexPolicy(min_receive_gap=20)
    assert pex.accept("a", 0.0) and pex.accept("b", 1.0)
    assert not pex.accept("a", 10.0)
    assert pex.accept("a", 21.0)
