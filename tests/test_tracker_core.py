"""The tracker's sans-I/O core and access list, driven with messages and a hand-held clock."""

from __future__ import annotations

import json
import os

import bencodepy
import orjson
import pytest

from i2ptorrent.tracker import classic
from i2ptorrent.cli import build_parser
from i2ptorrent.tracker.access import AccessList, new_invite_token
from i2ptorrent.tracker.core import NOT_ALLOWED, TrackerCore
from i2ptorrent.tracker.identity import PeerIdentity, b32_to_hash, hash_to_b32
from i2ptorrent.tracker.limits import TrackerLimits

IH = "I" * 20
IH2 = "J" * 20


def ident(n: int) -> PeerIdentity:
    return PeerIdentity(hash_to_b32(bytes([n]) * 32), destination=f"dest{n}")


def pid(n: int) -> str:
    return chr(0x41 + n) * 19 + "\xff"


def announce(peer: int, info_hash: str = IH, offers: int = 0, event: str | None = None, left: int = 10,
             invite: str | None = None) -> bytes:
    msg: dict[str, object] = {"action": "announce", "info_hash": info_hash, "peer_id": pid(peer),
                              "left": left, "numwant": offers,
                              "offers": [{"offer": {"type": "offer", "sdp": f"sdp-{peer}-{i}"},
                                          "offer_id": f"{peer:02d}{i:018d}"} for i in range(offers)]}
    if event:
        msg["event"] = event
    if invite:
        msg["invite"] = invite
    return orjson.dumps(msg)


def decode(out: list[tuple[int, bytes]]) -> list[tuple[int, dict]]:
    return [(conn, orjson.loads(data)) for conn, data in out]


def new_core(**limits: object) -> TrackerCore:
    return TrackerCore(TrackerLimits(**limits))  # type: ignore[arg-type]


def join(core: TrackerCore, n: int, now: float = 0.0, **kw: object) -> list[tuple[int, dict]]:
    if n not in core.connections:
        assert core.connect(n, ident(n), now)
    return decode(core.ws_message(n, announce(n, **kw), now))  # type: ignore[arg-type]


def test_announce_reply_counts_seeders_and_leechers() -> None:
    core = new_core()
    join(core, 1, left=0)
    [(conn, reply)] = join(core, 2, left=5)
    assert conn == 2
    assert reply == {"action": "announce", "interval": 120, "info_hash": IH, "complete": 1, "incomplete": 1}


def test_offers_go_to_other_peers_with_the_offerers_i2p_address() -> None:
    core = new_core()
    join(core, 1)
    join(core, 2)
    out = join(core, 3, offers=5)
    assert out[0][0] == 3 and "complete" in out[0][1]
    relayed = out[1:]
    assert sorted(conn for conn, _ in relayed) == [1, 2]  # only two others exist, never the offerer
    for _, msg in relayed:
        assert msg["peer_id"] == pid(3) and msg["info_hash"] == IH
        assert msg["offer"]["type"] == "offer" and msg["offer"]["sdp"].startswith("sdp-3-")
        assert msg["i2p_b32"] == ident(3).name and msg["i2p_dest"] == "dest3"


def test_answer_is_routed_only_to_the_peer_whose_offer_was_relayed() -> None:
    core = new_core()
    join(core, 1)
    [_, (target, offer)] = join(core, 2, offers=1)
    assert target == 1
    answer = {"action": "announce", "info_hash": IH, "peer_id": pid(1), "to_peer_id": pid(2),
              "offer_id": offer["offer_id"], "answer": {"type": "answer", "sdp": "ans"}}
    # A third peer cannot answer an offer it was never given.
    join(core, 3)
    assert core.ws_message(3, orjson.dumps(answer | {"peer_id": pid(3)}), 1.0) == []
    [(conn, msg)] = decode(core.ws_message(1, orjson.dumps(answer), 1.0))
    assert conn == 2
    assert msg["answer"] == {"type": "answer", "sdp": "ans"} and msg["peer_id"] == pid(1)
    assert msg["offer_id"] == offer["offer_id"] and msg["i2p_b32"] == ident(1).name
    # An offer is answered once.
    assert core.ws_message(1, orjson.dumps(answer), 2.0) == []


def test_answer_after_offer_timeout_is_dropped() -> None:
    core = new_core(offer_timeout=50.0)
    join(core, 1)
    [_, (_, offer)] = join(core, 2, offers=1)
    answer = {"action": "announce", "info_hash": IH, "peer_id": pid(1), "to_peer_id": pid(2),
              "offer_id": offer["offer_id"], "answer": {"type": "answer", "sdp": "late"}}
    assert core.ws_message(1, orjson.dumps(answer), 51.0) == []


def test_malformed_messages_get_a_failure_reason_and_change_nothing() -> None:
    core = new_core()
    join(core, 1, left=0)
    join(core, 2)
    before = core.stats()
    bad = [b"not json", b"[]", b'{"action":"dance"}', orjson.dumps({"action": "announce", "info_hash": "short"}),
           orjson.dumps({"action": "announce", "info_hash": IH, "peer_id": pid(2), "answer": {"type": "answer",
                                                                                           "sdp": "x"}}),
           orjson.dumps({"action": "announce", "info_hash": IH, "peer_id": pid(2), "offers": "lots"}),
           orjson.dumps({"action": "announce", "info_hash": IH, "peer_id": pid(2), "event": "none"}),
           b"x" * 70_000]
    for data in bad:
        out = decode(core.ws_message(2, data, 1.0))
        assert len(out) == 1 and out[0][0] == 2, data[:40]
        assert "failure reason" in out[0][1]
    after = core.stats()
    assert {k: after[k] for k in ("torrents", "peers", "seeders", "leechers")} == \
        {k: before[k] for k in ("torrents", "peers", "seeders", "leechers")}
    # The failure echoes the info_hash when readable, so the reference client can show it.
    [(_, msg)] = decode(core.ws_message(2, orjson.dumps({"action": "announce", "info_hash": IH}), 1.0))
    assert msg == {"failure reason": "invalid peer_id", "action": "announce", "info_hash": IH}


def test_peer_id_of_another_destination_is_refused() -> None:
    core = new_core()
    join(core, 1)
    core.connect(9, ident(9), 0.0)
    out = decode(core.ws_message(9, announce(1), 0.0))  # peer 9 claims peer 1's peer_id
    assert out == [(9, {"failure reason": "peer_id in use", "action": "announce", "info_hash": IH})]
    assert core.swarms[IH].ws[pid(1)].conn == 1


def test_stopped_and_socket_close_leave_the_swarm() -> None:
    core = new_core()
    join(core, 1)
    join(core, 2)
    [(_, reply)] = join(core, 1, event="stopped")
    assert reply["incomplete"] == 1
    core.disconnect(2)
    assert IH not in core.swarms


def test_private_tracker_refuses_unknown_and_admits_invited(tmp_path) -> None:
    acl = AccessList(tmp_path / "access.json")
    member = acl.allow(ident(1).name)
    assert member == ident(1).name
    token = acl.invite()
    core = TrackerCore(access=acl)
    join(core, 1, offers=0)
    # A stranger learns nothing: not the swarm's counts, not via scrape; its offers go nowhere.
    out = join(core, 2, offers=3)
    assert out == [(2, {"failure reason": NOT_ALLOWED, "action": "announce", "info_hash": IH})]
    scrape = decode(core.ws_message(2, orjson.dumps({"action": "scrape", "info_hash": IH}), 0.0))
    assert scrape == [(2, {"failure reason": NOT_ALLOWED, "action": "scrape", "info_hash": IH})]
    assert bencodepy.decode(core.http_scrape(ident(2), "", 0.0)) == {b"failure reason": NOT_ALLOWED.encode()}
    assert core.swarms[IH].incomplete == 1
    # With the invite it joins, and the invite is spent and written to disk.
    [(_, reply)] = join(core, 2, invite=token)
    assert reply["incomplete"] == 2
    assert ident(2).name in json.loads((tmp_path / "access.json").read_text())["allowed"]
    [(_, again)] = join(core, 3, invite=token)
    assert again["failure reason"] == NOT_ALLOWED


def test_every_invite_token_can_be_given_on_the_command_line(tmp_path) -> None:
    """`i2ptorrent seed FILE --invite TOKEN` must take any token the tracker prints: one starting with '-'
    was taken for an option and refused (1 token in 64; it failed the CLI life test in a full run)."""
    parser = build_parser()
    acl = AccessList.load(tmp_path / "access.json")
    tokens = [new_invite_token() for _ in range(3000)] + [acl.invite() for _ in range(5)]
    assert not [t for t in tokens if t.startswith("-")]  # 3000 draws of the old rule: ~47 would
    for token in tokens:
        assert parser.parse_args(["seed", "file.bin", "--invite", token]).invite == token
    assert len(set(tokens)) == len(tokens)


def test_invite_expiry_is_wall_clock_whatever_the_cores_monotonic_now(tmp_path) -> None:
    """The core's `now` is monotonic (seconds since boot); an invite's stored expiry is a Unix time."""
    wall = [1_700_000_000.0]
    path = tmp_path / "access.json"
    made = AccessList(path, wall_clock=lambda: wall[0]).invite(ttl=2)  # `tracker invite --ttl 2s`
    kept = AccessList(path, wall_clock=lambda: wall[0]).invite(ttl=2)
    assert [e["expires"] for e in json.loads(path.read_text())["invites"]] == [wall[0] + 2] * 2
    core = TrackerCore(access=AccessList.load(path, wall_clock=lambda: wall[0]))
    wall[0] += 1.0
    [(_, ok)] = join(core, 1, invite=kept, now=1e9)  # a monotonic `now` far beyond the expiry: irrelevant
    assert ok["incomplete"] == 1
    wall[0] += 2.0
    [(_, late)] = join(core, 2, invite=made, now=3.0)  # a monotonic `now` far before it: irrelevant too
    assert late["failure reason"] == NOT_ALLOWED


def test_access_list_file_round_trip_and_revoke(tmp_path) -> None:
    path = tmp_path / "data" / "access.json"
    acl = AccessList(path, wall_clock=lambda: 100.0)
    token = acl.invite(ttl=10)
    acl.allow("A" * 52)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert token not in path.read_text()  # only digests are stored
    other = AccessList.load(path, wall_clock=lambda: 200.0)
    assert other.allowed == {"a" * 52 + ".b32.i2p"}
    assert not other.redeem(token, ident(4).name)  # expired
    acl2 = AccessList.load(path)
    assert acl2.revoke("a" * 52 + ".b32.i2p")
    with pytest.raises(ValueError):
        acl2.allow("example.i2p")


def test_revoked_peer_is_dropped_from_swarms(tmp_path) -> None:
    acl = AccessList(tmp_path / "a.json")
    acl.allow(ident(1).name)
    acl.allow(ident(2).name)
    core = TrackerCore(access=acl)
    join(core, 1)
    join(core, 2)
    acl.revoke(ident(2).name)
    assert core.enforce_access() == [2]
    assert list(core.swarms[IH].ws) == [pid(1)]


def test_rate_limit_per_destination() -> None:
    core = new_core(rate_per_second=1.0, rate_burst=3.0)
    core.connect(1, ident(1), 0.0)
    replies = [decode(core.ws_message(1, announce(1), 0.0))[0][1] for _ in range(5)]
    assert ["failure reason" in r for r in replies] == [False, False, False, True, True]
    assert "failure reason" not in decode(core.ws_message(1, announce(1), 2.0))[0][1]


def test_swarm_is_bounded_lru_and_peers_expire() -> None:
    core = new_core(max_swarm_peers=3, peer_ttl=100.0, idle_timeout=1000.0)
    for n in range(1, 6):
        join(core, n, now=float(n))
    assert list(core.swarms[IH].ws) == [pid(3), pid(4), pid(5)]
    assert core.swarms[IH].incomplete == 3
    join(core, 3, now=50.0)
    assert core.expire(104.5) == []
    assert list(core.swarms[IH].ws) == [pid(5), pid(3)]
    core.expire(151.0)
    assert IH not in core.swarms


def test_number_of_swarms_is_bounded() -> None:
    core = new_core(max_swarms=2)
    join(core, 1, info_hash="a" * 20)
    join(core, 1, info_hash="b" * 20)
    join(core, 1, info_hash="c" * 20)
    assert list(core.swarms) == ["b" * 20, "c" * 20]


def test_idle_websockets_are_reported_for_closing() -> None:
    core = new_core(idle_timeout=300.0)
    join(core, 1, now=0.0)
    join(core, 2, now=200.0)
    assert core.expire(350.0) == [1]


def test_offer_count_is_capped() -> None:
    core = new_core(max_offers=2)
    for n in range(1, 6):
        join(core, n)
    out = join(core, 9, offers=5)
    assert len(out) == 1 + 2


def test_connections_per_destination_are_bounded() -> None:
    core = new_core(max_connections_per_peer=2)
    assert core.connect(1, ident(7), 0.0) and core.connect(2, ident(7), 0.0)
    assert not core.connect(3, ident(7), 0.0)
    core.disconnect(1)
    assert core.connect(3, ident(7), 0.0)


def http_query(peer: int, info_hash: bytes = b"H" * 20, **extra: str) -> str:
    from urllib.parse import quote_from_bytes
    params = {"info_hash": info_hash, "peer_id": pid(peer).encode("latin-1"), "port": b"6881",
              "uploaded": b"0", "downloaded": b"0", "left": b"7", "compact": b"1",
              **{k: v.encode() for k, v in extra.items()}}
    return "&".join(f"{k}={quote_from_bytes(v, safe='')}" for k, v in params.items())


def test_http_announce_returns_compact_destination_hashes_and_ignores_ip() -> None:
    core = new_core()
    first = bencodepy.decode(core.http_announce(ident(1), http_query(1), 0.0))
    assert first[b"peers"] == b"" and first[b"incomplete"] == 1 and first[b"interval"] == 600
    # Peer 2 claims to be someone else with `ip`: the transport's identity wins.
    reply = bencodepy.decode(core.http_announce(ident(2), http_query(2, ip="A" * 516 + ".i2p"), 0.0))
    assert reply[b"peers"] == b32_to_hash(ident(1).name)
    assert classic.parse_compact_peers(reply[b"peers"]) == [ident(1).name]
    third = bencodepy.decode(core.http_announce(ident(3), http_query(3, compact="0"), 0.0))
    assert {p[b"ip"] for p in third[b"peers"]} == {b"dest1.i2p", b"dest2.i2p"}
    assert all(p[b"port"] == 6881 for p in third[b"peers"])
    scrape = bencodepy.decode(core.http_scrape(ident(1), "info_hash=" + "H" * 20, 0.0))
    assert scrape == {b"files": {b"H" * 20: {b"complete": 0, b"incomplete": 3, b"downloaded": 0}}}


def test_one_destination_is_one_classic_peer_whatever_its_peer_ids() -> None:
    """A client restarted twice announces under three peer_ids from one destination: one peer, and it is
    never handed its own address."""
    core = new_core()
    core.http_announce(ident(2), http_query(2), 0.0)
    for n in (1, 3, 4):  # ident(1) under peer ids 1, 3, 4
        reply = bencodepy.decode(core.http_announce(ident(1), http_query(n, numwant="50"), float(n)))
        assert classic.parse_compact_peers(reply[b"peers"]) == [ident(2).name]
        assert reply[b"incomplete"] + reply[b"complete"] == 2
    reply = bencodepy.decode(core.http_announce(ident(2), http_query(2), 5.0))
    assert classic.parse_compact_peers(reply[b"peers"]) == [ident(1).name]
    scrape = bencodepy.decode(core.http_scrape(ident(1), "info_hash=" + "H" * 20, 5.0))
    assert scrape[b"files"][b"H" * 20][b"incomplete"] == 2
    core.http_announce(ident(1), http_query(4, event="stopped"), 6.0)
    scrape = bencodepy.decode(core.http_scrape(ident(1), "info_hash=" + "H" * 20, 6.0))
    assert scrape[b"files"][b"H" * 20][b"incomplete"] == 1


def test_http_announce_bad_query_gets_failure_reason() -> None:
    core = new_core()
    for query in ["", "info_hash=abc&peer_id=x", http_query(1) + "&event=dance", "x" * 5000]:
        reply = bencodepy.decode(core.http_announce(ident(1), query, 0.0))
        assert b"failure reason" in reply


def test_scrape_without_hashes_lists_swarms() -> None:
    core = new_core()
    join(core, 1, left=0)
    join(core, 2, info_hash=IH2, event="completed", left=0)
    core.connect(5, ident(5), 0.0)
    [(_, msg)] = decode(core.ws_message(5, b'{"action":"scrape"}', 0.0))
    assert msg["files"] == {IH: {"complete": 1, "incomplete": 0, "downloaded": 0},
                            IH2: {"complete": 1, "incomplete": 0, "downloaded": 1}}
    assert msg["flags"] == {"min_request_interval": 120}


def test_identity_helpers() -> None:
    digest = os.urandom(32)
    name = hash_to_b32(digest)
    assert len(name) == 60 and b32_to_hash(name) == digest
    assert b32_to_hash("example.i2p") is None and not PeerIdentity("loopback:1").is_i2p


def test_non_compact_peer_entries_become_b32_names() -> None:
    import hashlib

    from i2ptorrent.tracker.client import _peer_name
    from i2ptorrent.transport.sam_protocol import i2p_b64encode
    raw = os.urandom(384) + b"\x00\x00\x00"  # keys + a NULL certificate: a minimal destination
    expected = hash_to_b32(hashlib.sha256(raw).digest())
    assert _peer_name((i2p_b64encode(raw) + ".i2p").encode()) == expected
    assert _peer_name(i2p_b64encode(raw).encode()) == expected
    assert _peer_name(expected.upper().encode()) == expected
    assert _peer_name(b"10.0.0.1") is None and _peer_name(None) is None


def test_invites_made_by_the_cli_reach_a_running_tracker_and_are_spent_once(tmp_path) -> None:
    path = tmp_path / "access.json"
    running = AccessList.load(path)  # the tracker's copy, loaded before the invite exists
    token = AccessList.load(path).invite()  # `i2ptorrent tracker invite` in another process
    cli = AccessList.load(path)
    cli.allow("b" * 52)  # another edit by the CLI that the tracker's write must not undo
    assert running.redeem(token, ident(1).name)
    assert not AccessList.load(path).redeem(token, ident(2).name)
    on_disk = AccessList.load(path)
    assert on_disk.allowed == {ident(1).name, "b" * 52 + ".b32.i2p"} and on_disk.invites == {}
    assert not running.redeem("guess", ident(3).name)


def test_a_seed_is_given_leechers_only() -> None:
    """Two seeds have nothing to exchange: a seed's announce names no seed (HTTP) and its offers go to no
    seed (WebSocket); a leecher still hears of everyone."""
    core = new_core()
    for n in (1, 2):
        core.http_announce(ident(n), http_query(n, left="0"), 0.0)
    core.http_announce(ident(3), http_query(3), 0.0)
    seed = bencodepy.decode(core.http_announce(ident(4), http_query(4, left="0"), 0.0))
    assert classic.parse_compact_peers(seed[b"peers"]) == [ident(3).name]
    leech = bencodepy.decode(core.http_announce(ident(5), http_query(5), 0.0))
    assert sorted(classic.parse_compact_peers(leech[b"peers"])) == sorted(ident(n).name for n in (1, 2, 3, 4))
    join(core, 11, left=0)
    join(core, 12, left=5)
    relayed = join(core, 13, offers=5, left=0)[1:]
    assert [conn for conn, _ in relayed] == [12]
