"""Tracker cores sharing swarms, sans-I/O: what one records is handed to the other by hand, as the
Redis adapter would carry it (changes in one order for all, relays to the named instance)."""

from __future__ import annotations

import orjson

from i2ptorrent.tracker.core import NOT_ALLOWED, STORE_UNAVAILABLE, TrackerCore
from i2ptorrent.tracker.shared import Redeem, RemoteAnswer, RemoteOffer
from test_tracker_core import IH, announce, decode, ident, join, pid


def pair() -> tuple[TrackerCore, TrackerCore]:
    return TrackerCore(instance="A"), TrackerCore(instance="B")


def sync(*cores: TrackerCore) -> None:
    """The store's order: every core's changes, in turn, applied by every core (its own included)."""
    batch = [ch for core in cores for ch in core.changes]
    for core in cores:
        core.changes.clear()
    for core in cores:
        core.apply(batch)


def answer(peer: int, to: int, offer_id: str) -> bytes:
    return orjson.dumps({"action": "announce", "info_hash": IH, "peer_id": pid(peer), "to_peer_id": pid(to),
                         "offer_id": offer_id, "answer": {"type": "answer", "sdp": f"answer-{peer}"}})


def test_offer_and_answer_cross_instances() -> None:
    a, b = pair()
    join(a, 1, left=0)
    sync(a, b)
    [(_, reply)] = join(b, 2, offers=1)
    assert (reply["complete"], reply["incomplete"]) == (1, 1)  # B counts A's seeder
    [offer] = b.outbox
    assert isinstance(offer, RemoteOffer) and (offer.home, offer.target_conn) == ("A", 1)
    b.outbox.clear()
    [(conn, relayed)] = decode(a.deliver_offer(offer, now=1.0))
    assert conn == 1 and relayed["offer"]["sdp"] == "sdp-2-0" and relayed["i2p_b32"] == ident(2).name
    assert a.ws_message(1, answer(1, 2, relayed["offer_id"]), 2.0) == []  # not ours to deliver
    [back] = a.outbox
    assert isinstance(back, RemoteAnswer) and (back.home, back.target_conn) == ("B", 2)
    [(conn, delivered)] = decode(b.deliver_answer(back.target_conn, back.info_hash, back.to_peer_id, back.frame))
    assert conn == 2 and delivered["answer"]["sdp"] == "answer-1" and delivered["i2p_b32"] == ident(1).name


def test_an_answer_for_an_offer_never_relayed_goes_nowhere() -> None:
    a, b = pair()
    join(a, 1, left=0)
    sync(a, b)
    join(b, 2, offers=1)
    offer = b.outbox[0]
    assert isinstance(offer, RemoteOffer)
    a.deliver_offer(offer, now=1.0)
    assert a.ws_message(1, answer(1, 2, "x" * 20), 2.0) == [] and a.outbox == []  # unknown offer id
    assert a.ws_message(1, answer(1, 2, offer.offer_id), 60.0) == [] and a.outbox == []  # expired


def test_a_peer_that_moved_is_not_removed_by_its_old_instance() -> None:
    a, b = pair()
    join(a, 1, left=5)
    sync(a, b)
    assert b.connect(7, ident(1), 1.0)  # the same destination, reconnected to B
    b.ws_message(7, announce(1, left=5), 1.0)
    a.disconnect(1)  # A notices its old socket closed after that
    sync(b, a)  # the store's order: B's takeover first, A's stale removal second
    for core in (a, b):
        peer = core.swarms[IH].ws[pid(1)]
        assert (peer.home, peer.conn, core.swarms[IH].incomplete) == ("B", 7, 1)


def test_a_download_is_counted_once_everywhere() -> None:
    a, b = pair()
    join(a, 1, left=5)
    join(a, 1, event="completed", left=0)
    sync(a, b)
    assert a.swarms[IH].downloaded == b.swarms[IH].downloaded == 1
    sync(a, b)  # nothing new: nothing counted twice
    assert a.swarms[IH].downloaded == b.swarms[IH].downloaded == 1


def test_re_announces_are_shared_only_now_and_then() -> None:
    a = TrackerCore(instance="A")
    join(a, 1, now=0.0)
    assert len(a.changes) == 1
    join(a, 1, now=10.0)
    assert len(a.changes) == 1  # only its expiry moved: not worth a write
    join(a, 1, now=100.0)
    assert len(a.changes) == 2 and a.changes[-1].seen == 100.0


class SharedList:
    """An access policy whose invites are spent in the store (the adapter answers `redeemed`)."""

    shared = True

    def __init__(self) -> None:
        self.allowed: set[str] = set()

    def is_allowed(self, name: str) -> bool:
        return name in self.allowed

    def redeem(self, token: str, name: str) -> bool:
        raise AssertionError("a shared store's invites are never spent by the core")


def test_invites_wait_for_the_store_and_its_verdict() -> None:
    access = SharedList()
    core = TrackerCore(access=access, instance="A")
    assert core.connect(1, ident(1), 0.0, invite="tok")
    assert core.ws_message(1, announce(1), 0.0) == []  # held
    assert core.ws_message(1, announce(1, left=3), 0.0) == []  # held too, behind the first
    assert core.outbox == [Redeem(1, "tok", ident(1).name)]  # asked once
    access.allowed.add(ident(1).name)  # what the adapter does when the store spent it
    replies = decode(core.redeemed(1, True, 1.0))
    assert [r["incomplete"] for _, r in replies] == [1, 1]

    assert core.connect(2, ident(2), 0.0, invite="spent")
    core.ws_message(2, announce(2), 0.0)
    [(_, refused)] = decode(core.redeemed(2, False, 1.0))
    assert refused["failure reason"] == NOT_ALLOWED
    [(_, again)] = decode(core.ws_message(2, announce(2), 2.0))  # not asked again for the same token
    assert again["failure reason"] == NOT_ALLOWED and len(core.outbox) == 2

    assert core.connect(3, ident(3), 0.0, invite="t3")
    core.ws_message(3, announce(3), 0.0)
    [(_, later)] = decode(core.redeemed(3, None, 1.0))  # the store could not be asked
    assert later["failure reason"] == STORE_UNAVAILABLE


def test_expired_offers_are_forgotten_by_the_sweep() -> None:
    for core in (TrackerCore(), TrackerCore(instance="A")):  # alone, and sharing
        join(core, 1, left=0)
        join(core, 2, offers=1)
        assert len(core.connections[1].pending) == 1
        core.expire(10.0)
        assert len(core.connections[1].pending) == 1  # not yet: offers live 50 s
        core.expire(60.0)
        assert len(core.connections[1].pending) == 0
