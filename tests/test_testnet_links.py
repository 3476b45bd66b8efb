"""The testnet hub's core (sans-I/O): delays, jitter without reordering, loss, the queue bound."""

from __future__ import annotations

import base64
import hashlib

import pytest

from i2ptorrent.transport.testnet import parse_delay, router_info_name, session_options
from i2ptorrent.transport.testnet_links import LinkParams, LinkScheduler, ipv4_destination


def test_a_packet_leaves_after_its_links_delay_and_not_before() -> None:
    s = LinkScheduler(LinkParams(delay=0.05))
    assert s.submit(0, 1, b"p1", now=10.0)
    assert list(s.due(10.049)) == []
    assert s.next_due() == pytest.approx(10.05)
    assert list(s.due(10.05)) == [(1, b"p1")]
    assert s.next_due() is None
    assert s.sent[0].bytes == 2 and s.received[1].packets == 1


def test_each_link_has_its_own_delay() -> None:
    s = LinkScheduler(LinkParams(delay=0.1))
    s.set_link(0, 2, LinkParams(delay=0.01))
    s.submit(0, 1, b"slow", 0.0)
    s.submit(0, 2, b"fast", 0.0)
    assert list(s.due(0.02)) == [(2, b"fast")]
    assert list(s.due(0.1)) == [(1, b"slow")]


def test_jitter_varies_the_delay_but_never_reorders_a_link() -> None:
    s = LinkScheduler(LinkParams(delay=0.05, jitter=0.04), seed=1)
    for i in range(500):
        s.submit(3, 4, i.to_bytes(2, "big"), now=i * 0.001)
    out = [int.from_bytes(p, "big") for _, p in s.due(10.0)]
    assert out == list(range(500))
    t = LinkScheduler(LinkParams(delay=0.05, jitter=0.04), seed=1)
    dues = []
    for i in range(200):
        t.submit(3, 4, b"x", now=float(i))  # far apart: each packet's own jittered delay shows
        dues.append(t.next_due() - i)  # type: ignore[operator]
        list(t.due(i + 1.0))
    assert min(dues) >= 0.01 - 1e-9 and max(dues) <= 0.09 + 1e-9
    assert max(dues) - min(dues) > 0.04  # it did vary


def test_loss_drops_about_its_share_and_counts_it() -> None:
    s = LinkScheduler(LinkParams(loss=0.2), seed=7)
    kept = sum(s.submit(0, 1, b"x" * 100, 0.0) for _ in range(5000))
    assert 3800 < kept < 4200
    assert s.sent[0].dropped == 5000 - kept
    assert len(list(s.due(0.0))) == kept


def test_a_full_hub_drops_instead_of_growing() -> None:
    s = LinkScheduler(LinkParams(delay=1.0), max_queued_bytes=1000)
    assert all(s.submit(0, 1, b"x" * 100, 0.0) for _ in range(10))
    assert not s.submit(0, 1, b"x", 0.0)
    assert s.queued_bytes == 1000
    list(s.due(1.0))
    assert s.queued_bytes == 0 and s.submit(0, 1, b"x", 1.0)


def test_new_settings_apply_to_every_link() -> None:
    s = LinkScheduler(LinkParams(delay=1.0))
    s.set_link(0, 1, LinkParams(delay=5.0))
    s.set_all(LinkParams(delay=0.0))
    assert s.params(0, 1) == LinkParams() and s.params(5, 6) == LinkParams()
    with pytest.raises(ValueError):
        LinkParams(loss=1.5)


def test_only_ipv4_packets_have_a_destination() -> None:
    header = bytes([0x45, 0]) + bytes(14) + bytes([198, 18, 0, 11])
    assert ipv4_destination(header) == bytes([198, 18, 0, 11])
    assert ipv4_destination(bytes([0x60]) + bytes(39)) is None  # IPv6
    assert ipv4_destination(b"\x45short") is None


def test_router_info_file_is_named_by_its_identity_hash() -> None:
    ident = bytes(range(256)) + bytes(129) + (7).to_bytes(2, "big") + b"CERTDAT"
    info = ident + b"addresses and signature"
    digest = hashlib.sha256(ident).digest()
    b64 = base64.b64encode(digest).decode().replace("+", "-").replace("/", "~")
    assert router_info_name(info) == f"r{b64[0]}/routerInfo-{b64}.dat"


def test_delays_and_session_options() -> None:
    assert parse_delay("50ms") == pytest.approx(0.05)
    assert parse_delay("0.15s") == pytest.approx(0.15)
    assert parse_delay("0") == 0
    opts = session_options(1)
    assert opts["inbound.length"] == opts["outbound.length"] == "1"
    assert opts["i2cp.leaseSetEncType"] == "4,0"
