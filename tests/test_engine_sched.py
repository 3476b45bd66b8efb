"""The swarm's sans-I/O scheduling: piece picker (rarest first, pipelining, endgame) and choker."""

from __future__ import annotations

import random

from i2ptorrent.engine.choker import Choker
from i2ptorrent.engine.picker import BLOCK, PiecePicker

PIECE = 4 * BLOCK


def make(num: int = 8, total: int | None = None) -> PiecePicker:
    return PiecePicker(num, PIECE, total if total is not None else num * PIECE, rng=random.Random(1))


def full(n: int) -> int:
    return (1 << n) - 1


def test_rarest_piece_first() -> None:
    p = make(4)
    for peer in "abc":
        p.add_peer(peer)
    p.peer_bitfield("a", full(4))
    p.peer_bitfield("b", 0b0111)
    p.peer_bitfield("c", 0b0011)
    # availability: piece0=3 piece1=3 piece2=2 piece3=1 -> a starts with piece 3
    reqs = p.pick("a", 4)
    assert {r[0] for r in reqs} == {3}
    assert [r[1] for r in reqs] == [0, BLOCK, 2 * BLOCK, 3 * BLOCK]
    assert all(r[2] == BLOCK for r in reqs)
    assert p.pick("b", 4)[0][0] == 2


def test_short_last_piece_and_blocks() -> None:
    p = make(3, total=2 * PIECE + BLOCK + 100)
    p.add_peer("a")
    p.peer_bitfield("a", 0b100)
    assert p.pick("a", 10) == [(2, 0, BLOCK), (2, BLOCK, 100)]


def test_peer_finishes_its_own_piece_before_starting_another() -> None:
    p = make(4)
    p.add_peer("a")
    p.peer_bitfield("a", full(4))
    first = p.pick("a", 2)
    second = p.pick("a", 2)
    assert {r[0] for r in first + second} == {first[0][0]}


def test_piece_completion_and_verification() -> None:
    p = make(2)
    p.add_peer("a")
    p.peer_bitfield("a", 0b01)
    reqs = p.pick("a", 10)
    assert len(reqs) == 4
    results = [p.block_received("a", i, b) for i, b, _ in reqs]
    assert [r[1] for r in results] == [False, False, False, True]
    assert p.pick("a", 10) == []  # being verified: nothing to ask for
    p.piece_verified(0)
    assert p.have(0) and p.num_have == 1
    assert not p.interesting("a")


def test_hash_failure_blames_contributors_and_restarts_piece() -> None:
    p = make(1)
    p.add_peer("bad")
    p.peer_bitfield("bad", 1)
    for i, b, _ in p.pick("bad", 10):
        p.block_received("bad", i, b)
    assert p.piece_failed(0) == {"bad"}
    p.remove_peer("bad")
    p.add_peer("good")
    p.peer_bitfield("good", 1)
    assert len(p.pick("good", 10)) == 4


def test_dropped_requests_are_requested_again() -> None:
    p = make(1)
    p.add_peer("a")
    p.add_peer("b")
    p.peer_bitfield("a", 1)
    p.peer_bitfield("b", 1)
    reqs = p.pick("a", 4)
    for i, b, _ in reqs[:2]:
        p.request_dropped("a", i, b)
    again = p.pick("b", 4)
    assert sorted(again)[:2] == sorted(reqs[:2])


def test_endgame_duplicates_and_cancels() -> None:
    p = make(1)
    p.add_peer("slow")
    p.add_peer("fast")
    p.peer_bitfield("slow", 1)
    p.peer_bitfield("fast", 1)
    reqs = p.pick("slow", 4)
    assert p.in_endgame()
    dup = p.pick("fast", 4)
    assert sorted(dup) == sorted(reqs)
    wanted, _, cancel = p.block_received("fast", 0, 0)
    assert wanted and cancel == ["slow"]
    wanted, _, _ = p.block_received("slow", 0, 0)
    assert not wanted  # the late duplicate is dropped
    assert p.outstanding("slow") == 3


def test_peer_leaving_updates_availability_and_frees_blocks() -> None:
    p = make(2)
    p.add_peer("a")
    p.peer_bitfield("a", full(2))
    p.peer_have("a", 1)
    assert p.availability(0) == 1
    p.pick("a", 3)
    p.remove_peer("a")
    assert p.availability(0) == 0 and p.availability(1) == 0
    p.add_peer("b")
    p.peer_bitfield("b", full(2))
    assert len(p.pick("b", 100)) == 8


def test_have_bits_on_start_are_not_requested() -> None:
    p = PiecePicker(3, PIECE, 3 * PIECE, have=[0, 2])
    p.add_peer("a")
    p.peer_bitfield("a", full(3))
    assert {r[0] for r in p.pick("a", 100)} == {1}


# -- choker ----------------------------------------------------------------------------------------


def test_interested_peer_gets_free_slot_at_once() -> None:
    c = Choker(slots=2)
    c.add_peer("a", 0)
    d = c.set_interested("a", True, 0)
    assert d.unchoke == ["a"]


def test_tit_for_tat_keeps_best_uploaders_and_one_optimistic() -> None:
    c = Choker(slots=2, rng=random.Random(3))
    peers = ["a", "b", "c", "d", "e"]
    for p in peers:
        c.add_peer(p, 0)
        c.set_interested(p, True, 0)
    rates = {"a": 10.0, "b": 500.0, "c": 300.0, "d": 1.0, "e": 0.0}
    c.tick(10.0, rates)
    unchoked = c.unchoked()
    assert {"b", "c"} <= unchoked
    assert len(unchoked) == 3
    assert c.optimistic in unchoked and c.optimistic not in {"b", "c"}


def test_optimistic_unchoke_rotates() -> None:
    c = Choker(slots=1, rechoke_interval=10, optimistic_interval=30, rng=random.Random(5))
    for p in "abcdefgh":
        c.add_peer(p, 0)
        c.set_interested(p, True, 0)
    seen = set()
    for t in range(0, 600, 10):
        c.tick(float(t), {"a": 100.0})
        seen.add(c.optimistic)
        assert "a" in c.unchoked()
    assert len(seen - {None}) >= 4


def test_not_interested_peer_is_choked_at_next_round() -> None:
    c = Choker(slots=1)
    c.add_peer("a", 0)
    c.set_interested("a", True, 0)
    c.set_interested("a", False, 1)
    d = c.tick(10.0, {})
    assert d.choke == ["a"]


def test_removed_peer_frees_slot() -> None:
    c = Choker(slots=1)
    for p in "abc":
        c.add_peer(p, 0)
        c.set_interested(p, True, 0)
    assert c.unchoked() == {"a", "b"}
    d = c.remove_peer("a", 1)
    assert d.unchoke == ["c"]


def test_banned_peer_blocks_are_discarded() -> None:
    p = make(2)
    for peer in ("bad", "good"):
        p.add_peer(peer)
        p.peer_bitfield(peer, full(2))
    reqs = p.pick("bad", 2)  # half of one piece
    for i, b, _ in reqs:
        p.block_received("bad", i, b)
    assert p.discard_blocks_of("bad") == [reqs[0][0]]
    p.remove_peer("bad")
    got = p.pick("good", 100)
    assert len(got) == 8  # the bad half is fetched again from the good peer


def test_new_pieces_start_only_within_the_byte_budget() -> None:
    p = PiecePicker(8, PIECE, 8 * PIECE, rng=random.Random(1), buffer_budget=2 * PIECE)
    for peer in "abc":
        p.add_peer(peer)
        p.peer_bitfield(peer, full(8))
    a = {r[0] for r in p.pick("a", 4)}
    b = {r[0] for r in p.pick("b", 4)}
    assert len(a | b) == 2 and p.in_progress_bytes == 2 * PIECE
    c = p.pick("c", 100)  # no room for a third piece: c helps with the two started
    assert c == []  # every block of both is already asked, and no third piece may start
    piece = next(iter(a))
    for block in range(4):
        p.block_received("a", piece, block * BLOCK)
    assert p.in_progress_bytes == 2 * PIECE  # complete, being verified: still held
    p.piece_verified(piece)
    assert p.in_progress_bytes == PIECE
    assert len({r[0] for r in p.pick("c", 4)}) == 1  # room again


def test_a_piece_bigger_than_the_budget_is_fetched_alone() -> None:
    p = PiecePicker(4, PIECE, 4 * PIECE, rng=random.Random(1), buffer_budget=PIECE // 2)
    for peer in "ab":
        p.add_peer(peer)
        p.peer_bitfield(peer, full(4))
    first = p.pick("a", 2)
    assert len({r[0] for r in first}) == 1
    second = p.pick("b", 100)
    assert {r[0] for r in second} == {first[0][0]} and len(second) == 2  # b shares the one piece


def test_a_started_piece_nobody_has_any_more_gives_its_room_up() -> None:
    p = PiecePicker(4, PIECE, 4 * PIECE, rng=random.Random(1), buffer_budget=PIECE)
    p.add_peer("a")
    p.peer_bitfield("a", 0b0001)
    (piece, begin, _), = p.pick("a", 1)
    p.block_received("a", piece, begin)
    p.remove_peer("a")  # the only peer with piece 0 left with one block of it delivered
    p.add_peer("b")
    p.peer_bitfield("b", 0b1110)
    got = p.pick("b", 4)
    assert got and {r[0] for r in got} != {0}
    assert p.evicted == [0] and not p.in_progress(0) and p.in_progress_bytes == PIECE
