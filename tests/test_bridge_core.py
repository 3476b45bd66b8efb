"""The bridge's sans-I/O parts: its tracker endpoint (BridgeCore), the SDP checks/filters (ice.py), and
the splice of two streams (in memory)."""

from __future__ import annotations

import asyncio
import ipaddress

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from i2ptorrent.bridge.core import (
    RATE_LIMITED, AnswerOffer, BridgeCore, BridgeLimits, CloseSocket, DropChannels, Send, SwarmView,
)
from i2ptorrent.bridge.ice import (
    MAX_CANDIDATES, OfferError, address_filter, answer_address, candidate_addresses, check_offer,
    filter_candidates, private_only,
)
from i2ptorrent.bridge.splice import splice

SERVED = b"S" * 20
BRIDGE_ID = b"-IT0001-bridgebridge"

CHROME_OFFER = "\r\n".join([
    "v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0",
    "a=extmap-allow-mixed", "a=msid-semantic: WMS",
    "m=application 41234 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 10.77.0.1",
    "a=candidate:3018705473 1 udp 2113937151 10.77.0.1 41234 typ host generation 0 network-cost 999",
    "a=candidate:1 1 udp 2113937151 8.8.8.8 41235 typ host generation 0",
    "a=candidate:2 1 udp 2113937151 5d1c0b9e-4f3a-4c1e-9c1d-2b1f0e9a8b7c.local 41236 typ host generation 0",
    "a=candidate:3 1 udp 1677729535 93.184.216.34 41237 typ srflx raddr 10.77.0.1 rport 41234",
    "a=ice-ufrag:abcd", "a=ice-pwd:0123456789abcdefghijklmn", "a=ice-options:trickle",
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32), "a=setup:actpass", "a=mid:0",
    "a=sctp-port:5000", "a=max-message-size:262144", "",
])


def ident(n: int) -> str:
    return f"{n:020d}"


def announce(peer: str, info_hash: bytes = SERVED, offers: int = 1, **extra: object) -> bytes:
    msg: dict[str, object] = {
        "action": "announce", "info_hash": info_hash.decode("latin-1"), "peer_id": peer, "numwant": offers,
        "uploaded": 0, "downloaded": 0, "left": 100, "event": "started",
        "offers": [{"offer_id": ident(900 + i), "offer": {"type": "offer", "sdp": CHROME_OFFER}}
                   for i in range(offers)],
    }
    msg.update(extra)
    return orjson.dumps(msg)


def make(**limits: object) -> BridgeCore:
    def serves(info_hash: bytes, left: float) -> SwarmView | None:
        return SwarmView(1, 0) if info_hash == SERVED else None
    return BridgeCore(BRIDGE_ID, serves, BridgeLimits(**limits))  # type: ignore[arg-type]


def frames(actions: list[object]) -> list[dict[str, object]]:
    return [orjson.loads(a.data) for a in actions if isinstance(a, Send)]


def test_announce_gets_a_reply_and_one_offer_answered_per_browser_peer() -> None:
    core = make()
    assert core.connect(1, 0.0)
    out = core.receive(1, announce(ident(1), offers=5), 0.0)
    [reply] = frames(out)
    assert reply == {"action": "announce", "interval": 30, "info_hash": SERVED.decode("latin-1"),
                     "complete": 1, "incomplete": 0}
    answers = [a for a in out if isinstance(a, AnswerOffer)]
    assert len(answers) == 1 and answers[0].key == (ident(1), SERVED.decode("latin-1"))
    assert answers[0].offer.offer_id == ident(900)
    # Re-announcing while that channel lives answers nothing more; once it closes, a new offer is taken.
    assert not [a for a in core.receive(1, announce(ident(1), offers=5), 1.0) if isinstance(a, AnswerOffer)]
    core.channel_open(1, answers[0].key)
    core.channel_closed(1, answers[0].key, opened=True)
    assert [a for a in core.receive(1, announce(ident(1), offers=5), 2.0) if isinstance(a, AnswerOffer)]


def test_the_answer_frame_is_what_a_tracker_relays() -> None:
    core = make()
    frame = orjson.loads(core.answer((ident(1), SERVED.decode("latin-1")), ident(900), "v=0\r\n"))
    assert frame == {"action": "announce", "answer": {"type": "answer", "sdp": "v=0\r\n"}, "offer_id": ident(900),
                     "peer_id": BRIDGE_ID.decode("latin-1"), "info_hash": SERVED.decode("latin-1")}


def test_unknown_torrent_is_announced_but_no_offer_is_answered() -> None:
    core = make()
    core.connect(1, 0.0)
    out = core.receive(1, announce(ident(1), info_hash=b"U" * 20, offers=3), 0.0)
    assert [f["complete"] for f in frames(out)] == [0]
    assert not [a for a in out if isinstance(a, AnswerOffer)]


@pytest.mark.parametrize("data, reason", [
    (b"{not json", "invalid JSON"),
    (b"[1,2]", "message is not an object"),
    (b'{"action":"dance"}', "invalid action"),
    (orjson.dumps({"action": "announce", "info_hash": "short", "peer_id": ident(1)}), "invalid info_hash"),
    (b"x" * (64 * 1024 + 1), "message too large"),
    (announce(ident(1)).replace(b'"type":"offer"', b'"type":"nope"'), "invalid offer"),
])
def test_bad_messages_get_a_failure_reason_and_the_socket_stays(data: bytes, reason: str) -> None:
    core = make()
    core.connect(1, 0.0)
    out = core.receive(1, data, 0.0)
    assert [f["failure reason"] for f in frames(out)] == [reason]
    assert not [a for a in out if isinstance(a, CloseSocket)]
    assert frames(core.receive(1, announce(ident(1)), 0.0))[0]["action"] == "announce"


def test_an_answer_or_our_own_peer_id_is_refused() -> None:
    core = make()
    core.connect(1, 0.0)
    answer = orjson.dumps({"action": "announce", "info_hash": SERVED.decode("latin-1"), "peer_id": ident(1),
                           "to_peer_id": ident(2), "offer_id": ident(3), "answer": {"type": "answer", "sdp": "v=0"}})
    assert frames(core.receive(1, answer, 0.0))[0]["failure reason"] == "the bridge sends no offers"
    own = announce(BRIDGE_ID.decode("latin-1"))
    assert "own" in frames(core.receive(1, own, 0.0))[0]["failure reason"]


def test_a_socket_that_keeps_failing_is_closed_and_others_are_served() -> None:
    core = make(max_strikes=5)
    core.connect(1, 0.0)
    core.connect(2, 0.0)
    outs = [core.receive(1, b"garbage", 0.0) for _ in range(5)]
    assert not any(isinstance(a, CloseSocket) for out in outs[:4] for a in out)
    assert [a for a in outs[4] if isinstance(a, CloseSocket)][0].socket_id == 1
    out = core.receive(2, announce(ident(2)), 0.0)
    assert frames(out)[0]["complete"] == 1 and [a for a in out if isinstance(a, AnswerOffer)]


def test_flood_is_rate_limited_per_socket() -> None:
    core = make(rate_per_second=1.0, rate_burst=3.0, max_strikes=1000)
    core.connect(1, 0.0)
    core.connect(2, 0.0)
    reasons = [frames(core.receive(1, b'{"action":"scrape"}', 0.0))[0].get("failure reason") for _ in range(10)]
    assert reasons[:3] == [None, None, None] and set(reasons[3:]) == {RATE_LIMITED}
    assert "failure reason" not in frames(core.receive(2, b'{"action":"scrape"}', 0.0))[0]
    assert "failure reason" not in frames(core.receive(1, b'{"action":"scrape"}', 2.0))[0]  # refilled


def test_channel_budgets_bound_the_whole_bridge() -> None:
    core = make(max_connecting=3, max_channels=4, max_strikes=1000, rate_burst=1000)
    answered = []
    for n in range(10):
        core.connect(n, 0.0)
        answered += [a for a in core.receive(n, announce(ident(n), offers=5), 0.0) if isinstance(a, AnswerOffer)]
    assert len(answered) == 3  # connecting at once
    for a in answered:
        core.channel_open(a.socket_id, a.key)
    more = [a for n in range(3, 10) for a in core.receive(n, announce(ident(n), offers=5), 0.0)
            if isinstance(a, AnswerOffer)]
    assert len(more) == 1 and core.channels == 4  # live + connecting
    core.channel_closed(more[0].socket_id, more[0].key, opened=False)
    core.channel_closed(answered[0].socket_id, answered[0].key, opened=True)
    assert core.channels == 2


def test_one_socket_cannot_hold_every_connecting_slot() -> None:
    core = make(max_connecting_per_socket=2, max_strikes=1000, rate_burst=1000)
    core.connect(1, 0.0)
    core.connect(2, 0.0)
    flood = [a for n in range(10) for a in core.receive(1, announce(ident(n), offers=5), 0.0)
             if isinstance(a, AnswerOffer)]
    assert len(flood) == 2
    assert [a for a in core.receive(2, announce(ident(99)), 0.0) if isinstance(a, AnswerOffer)]
    core.channel_closed(1, flood[0].key, opened=False)  # timed out: the slot comes back
    assert len([a for a in core.receive(1, announce(ident(50), offers=5), 0.0) if isinstance(a, AnswerOffer)]) == 1


def test_stopped_drops_the_channels_and_too_many_torrents_are_refused() -> None:
    core = make(max_torrents_per_socket=2)
    core.connect(1, 0.0)
    out = core.receive(1, announce(ident(1), event="stopped"), 0.0)
    assert DropChannels((ident(1), SERVED.decode("latin-1"))) in out
    for i in range(2):
        core.receive(1, announce(ident(1), info_hash=bytes([65 + i]) * 20), 0.0)
    out = core.receive(1, announce(ident(1), info_hash=b"Z" * 20), 0.0)
    assert frames(out)[0]["failure reason"] == "too many torrents on this socket"


def test_scrape_sockets_limit_and_idle_sockets() -> None:
    core = make(max_sockets=2, idle_timeout=10.0)
    assert core.connect(1, 0.0) and core.connect(2, 5.0) and not core.connect(3, 0.0)
    scrape = orjson.dumps({"action": "scrape", "info_hash": [SERVED.decode("latin-1"), "U" * 20]})
    files = frames(core.receive(1, scrape, 6.0))[0]["files"]
    assert files == {SERVED.decode("latin-1"): {"complete": 1, "incomplete": 0, "downloaded": 0},
                     "U" * 20: {"complete": 0, "incomplete": 0, "downloaded": 0}}
    assert core.expire(15.5) == [CloseSocket(2, "idle")]
    assert CloseSocket(1, "idle") not in core.expire(15.9) and CloseSocket(1, "idle") in core.expire(16.1)


# -- ice.py -----------------------------------------------------------------------------------------

def test_offer_candidates_keep_only_allowed_numeric_addresses() -> None:
    sdp, kept = filter_candidates(CHROME_OFFER, private_only)
    assert kept == 1
    assert "10.77.0.1 41234 typ host" in sdp
    assert "8.8.8.8" not in sdp and ".local" not in sdp and "93.184.216.34" not in sdp
    assert "a=fingerprint:sha-256" in sdp and sdp.endswith("\r\n")
    only = address_filter(["10.77.0.2"])
    assert filter_candidates(CHROME_OFFER, only)[1] == 0


def test_the_answer_names_one_address_the_browser_named_if_it_can() -> None:
    ours = "v=0\r\n" + "".join(f"a=candidate:{i} 1 udp 1 {a} 5{i} typ host\r\n"
                                for i, a in enumerate(("192.168.1.5", "10.77.0.1", "172.17.0.1", "10.77.0.1")))
    ip = ipaddress.ip_address
    assert candidate_addresses(ours) == [ip("192.168.1.5"), ip("10.77.0.1"), ip("172.17.0.1")]
    offered = candidate_addresses(filter_candidates(CHROME_OFFER, private_only)[0])
    assert offered == [ip("10.77.0.1")]  # the mDNS name is skipped, never resolved
    chosen = answer_address(ours, offered, private_only)
    assert chosen == ip("10.77.0.1")
    answer, kept = filter_candidates(ours, lambda a: a == chosen)
    assert kept == 2 and "192.168.1.5" not in answer and "172.17.0.1" not in answer
    # a browser that hides its addresses behind mDNS names learns one of ours, the first allowed
    assert answer_address(ours, [], private_only) == ip("192.168.1.5")
    assert answer_address(ours, [], address_filter(["172.17.0.1"])) == ip("172.17.0.1")
    assert answer_address(ours, offered, address_filter(["8.8.8.8"])) is None


def test_private_only() -> None:
    for a in ("10.1.2.3", "192.168.1.1", "172.16.0.1", "fe80::1", "fd00::1", "127.0.0.1"):
        assert private_only(ipaddress.ip_address(a)), a
    for a in ("8.8.8.8", "2001:4860::8888", "224.0.0.251", "0.0.0.0"):
        assert not private_only(ipaddress.ip_address(a)), a


def test_candidate_count_is_bounded() -> None:
    many = CHROME_OFFER + "".join(f"a=candidate:{i} 1 udp 1 10.0.0.{i % 250} {i} typ host\r\n" for i in range(100))
    assert filter_candidates(many, private_only)[1] == MAX_CANDIDATES


def test_check_offer_accepts_a_browser_offer() -> None:
    check_offer(CHROME_OFFER)


@pytest.mark.parametrize("mutate, reason", [
    (lambda s: s.replace("v=0", "v=1"), "not an SDP"),
    (lambda s: s.replace("m=application 41234 UDP/DTLS/SCTP", "m=audio 41234 UDP/TLS/RTP/SAVPF"), "data-channel"),
    (lambda s: s + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n", "exactly one"),
    (lambda s: s.replace("a=fingerprint", "a=fingerprunt"), "fingerprint"),
    (lambda s: s.replace("a=ice-pwd", "a=ice-pw"), "ICE credentials"),
    (lambda s: s + "a=x\r\n" * 500, "too many lines"),
    (lambda s: s.replace("s=-", "s=\x00"), "control"),
])
def test_check_offer_refuses(mutate: object, reason: str) -> None:
    with pytest.raises(OfferError, match=reason):
        check_offer(mutate(CHROME_OFFER))  # type: ignore[operator]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_sdp_checks_never_fail_otherwise(sdp: str) -> None:
    try:
        check_offer(sdp)
    except OfferError:
        pass
    filtered, kept = filter_candidates(sdp, private_only)
    assert kept <= MAX_CANDIDATES


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000) | st.text(max_size=3000).map(str.encode))
def test_core_answers_any_bytes_with_a_frame(data: bytes) -> None:
    core = make(max_strikes=10**6, rate_burst=10**6)
    core.connect(1, 0.0)
    out = core.receive(1, data, 0.0)
    assert len(frames(out)) == 1


# -- splice.py --------------------------------------------------------------------------------------

class MemoryStream:
    """In-memory ByteStream end (unit test of the splice only)."""

    def __init__(self, remote: str) -> None:
        self.remote = remote
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.sent = bytearray()
        self.closed = False

    async def read(self, n: int = 65536) -> bytes:
        return await self.inbox.get()

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("closed")
        self.sent += data

    async def close(self) -> None:
        self.closed = True


async def test_splice_copies_both_ways_and_closes_both_when_one_ends() -> None:
    a, b = MemoryStream("browser"), MemoryStream("i2p")
    task = asyncio.ensure_future(splice(a, b))
    for chunk in (b"hello ", b"over ", b"i2p"):
        a.inbox.put_nowait(chunk)
    b.inbox.put_nowait(b"pieces")
    async with asyncio.timeout(5):  # both ways copied before the browser hangs up
        while len(b.sent) < 14 or len(a.sent) < 6:
            await asyncio.sleep(0.001)
    a.inbox.put_nowait(b"")  # the browser hangs up
    moved = await asyncio.wait_for(task, 5)
    assert bytes(b.sent) == b"hello over i2p" and bytes(a.sent) == b"pieces"
    assert moved == (14, 6) and a.closed and b.closed


async def test_splice_ends_when_a_write_fails() -> None:
    a, b = MemoryStream("browser"), MemoryStream("i2p")
    b.closed = True
    a.inbox.put_nowait(b"data")
    await asyncio.wait_for(splice(a, b), 5)
    assert a.closed
