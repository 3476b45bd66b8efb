"""The swarm core (engine/swarm.py) driven by events and times alone: no router, no socket, no sleep.

Each remote peer is a real PeerWire in the test; the bytes the core wants sent go to it and its answers
come back with a time. Timers run the way the asyncio adapter runs them: `on_timer(next_deadline())`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable

import pytest

from i2ptorrent.engine.actions import (
    Action, ClosePeer, Completed, InstallMetadata, PeerBanned, Send, ServeBlock, WritePiece,
)
from i2ptorrent.engine.metainfo import Metainfo
from i2ptorrent.engine.peer_state import HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, KEEPALIVE_INTERVAL, SNUB_TIMEOUT
from i2ptorrent.engine.picker import BLOCK
from i2ptorrent.engine.swarm import MIN_QUEUE, SwarmCore
from i2ptorrent.wire.bencode import bencode
from i2ptorrent.wire.connection import PeerWire
from i2ptorrent.wire.events import (
    BlockReceived, BlockRequested, Choke, Event, HandshakeReceived, Interested, KeepAlive, MetadataRequested,
    RequestCancelled, Unchoke,
)
from i2ptorrent.wire.extension import metadata_piece
from i2ptorrent.wire.pex import PexReceived

MiB = 1024 * 1024


def torrent(num_pieces: int, piece_length: int, content: bytes | None = None) -> tuple[Metainfo, bytes]:
    """A single-file torrent of `num_pieces` (real hashes when `content` is given)."""
    total = num_pieces * piece_length
    if content is not None:
        hashes = b"".join(hashlib.sha1(content[i:i + piece_length]).digest() for i in range(0, total, piece_length))
    else:
        hashes = bytes(20 * num_pieces)
    info = bencode({b"name": b"data.bin", b"piece length": piece_length, b"length": total, b"pieces": hashes})
    return Metainfo(hashlib.sha1(info).digest(), "data.bin", info_bytes=info), content or b""


class Remote:
    """The other end of one connection: a PeerWire and a simple policy."""

    def __init__(self, name: str, meta: Metainfo, *, seed: bool = True, unchokes: bool = True,
                 answers: bool = True, content: bytes = b"", info: bytes | None = None) -> None:
        self.key = name
        self.remote = f"{name * 52}"[:52] + ".b32.i2p"
        full = info or meta.info_bytes
        assert full is not None
        geometry = Metainfo(meta.info_hash, meta.name, info_bytes=full)
        self.wire = PeerWire(meta.info_hash, b"-RM0001-" + name.encode().ljust(12, b"x"),
                             num_pieces=geometry.num_pieces, piece_length=geometry.piece_length,
                             total_length=geometry.total_size, metadata_size=len(info) if info else None)
        self.seed, self.unchokes, self.answers = seed, unchokes, answers
        self.content = content
        self.info = info
        self.events: list[Event] = []
        self.closed: str | None = None

    def respond(self, events: Iterable[Event]) -> None:
        if not self.wire.handshake_sent:
            return  # silent
        for ev in events:
            if isinstance(ev, HandshakeReceived):
                if self.seed:
                    self.wire.send_have_all()
                else:
                    self.wire.send_have_none()
                if self.info is not None:
                    self.wire.send_extension_handshake()
            elif isinstance(ev, Interested) and self.unchokes:
                self.wire.send_unchoke()
            elif isinstance(ev, BlockRequested) and self.answers:
                data = self.content[ev.index * self.wire.piece_length + ev.begin:][:ev.length] \
                    if self.content else bytes(ev.length)
                self.wire.send_piece(ev.index, ev.begin, data)
            elif isinstance(ev, MetadataRequested) and self.info is not None:
                self.wire.send_metadata_data(ev.piece, metadata_piece(self.info, ev.piece))

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


class Net:
    """The core and its remotes; `pump` moves bytes both ways until nothing moves."""

    def __init__(self, core: SwarmCore) -> None:
        self.core = core
        self.remotes: dict[str, Remote] = {}
        self.actions: list[Action] = []  # everything but Send, in order

    def connect(self, r: Remote, now: float, outgoing: bool = True) -> None:
        assert self.core.add_peer(r.key, r.remote, outgoing, now) is None
        self.remotes[r.key] = r
        r.wire.send_handshake()
        self.pump(now)

    def pump(self, now: float) -> list[Action]:
        new: list[Action] = []
        while True:
            moved = False
            for a in self.core.take_actions():
                if isinstance(a, Send):
                    r = self.remotes[a.peer]  # type: ignore[index]
                    evs = r.wire.receive_data(a.data)
                    r.events += evs
                    r.respond(evs)
                    moved = True
                else:
                    new.append(a)
                    if isinstance(a, ClosePeer):
                        self.remotes[a.peer].closed = a.reason  # type: ignore[index]
            for r in self.remotes.values():
                data = r.wire.data_to_send()
                if data and r.closed is None:
                    self.core.receive_data(r.key, data, now)
                    moved = True
            if not moved:
                self.actions += new
                return new

    def advance(self, until: float) -> list[Action]:
        """Run the timers due up to `until`, as the adapter would."""
        new: list[Action] = []
        while (d := self.core.next_deadline()) is not None and d <= until:
            self.core.on_timer(d)
            new += self.pump(d)
        return new


def closes(actions: Iterable[Action]) -> dict[object, str]:
    return {a.peer: a.reason for a in actions if isinstance(a, ClosePeer)}


def leecher(meta: Metainfo, **kw: object) -> SwarmCore:
    core = SwarmCore(meta, b"-IT0001-" + bytes(12), rng=random.Random(1), **kw)  # type: ignore[arg-type]
    core.set_pieces([], None, 0.0)
    return core


def seeder(meta: Metainfo) -> SwarmCore:
    core = SwarmCore(meta, b"-IT0001-" + bytes(12), rng=random.Random(1))
    core.set_pieces(range(meta.num_pieces), None, 0.0)
    assert core.take_actions() == [Completed(flush=False)]
    return core


def test_a_seed_drops_a_seed_at_its_have_all_and_remembers_its_address() -> None:
    """A seeding engine dials the addresses it hears of (a leecher may have announced before it); the ones
    that turn out to be seeds are dropped at once and remembered, so they are not dialled again."""
    meta, _ = torrent(8, 4 * BLOCK)
    net = Net(seeder(meta))
    seed, leech = Remote("s", meta), Remote("l", meta, seed=False)
    net.connect(seed, 0.0)
    net.connect(leech, 0.0)
    assert closes(net.actions) == {"s": "both seeds"}
    assert list(net.core.known_seeds) == [seed.remote]
    assert set(net.core.peers) == {"l"}


def test_peer_without_handshake_is_closed_after_the_timeout() -> None:
    meta, _ = torrent(8, 4 * BLOCK)
    net = Net(seeder(meta))
    assert net.core.add_peer("a", "a.b32.i2p", False, 0.0) is None
    net.remotes["a"] = Remote("a", meta)  # it never sends its handshake
    net.pump(0.0)
    assert closes(net.advance(HANDSHAKE_TIMEOUT - 0.5)) == {}
    assert closes(net.advance(HANDSHAKE_TIMEOUT)) == {"a": "handshake timeout"}
    assert not net.core.peers and net.core.next_deadline() is None


def test_keepalive_when_quiet_then_idle_close_and_the_download_limit_stops_the_idle_clock() -> None:
    meta, _ = torrent(8, 4 * BLOCK)
    net = Net(seeder(meta))
    a, b = Remote("a", meta, seed=False), Remote("b", meta, seed=False)
    net.connect(a, 0.0)
    net.connect(b, 0.0)
    net.advance(KEEPALIVE_INTERVAL - 1)
    assert not a.of(KeepAlive)
    net.advance(KEEPALIVE_INTERVAL)
    assert len(a.of(KeepAlive)) == 1  # we were quiet for 100 s: the peer hears we are alive
    net.advance(250.0)
    net.core.reading_paused("b", 250.0)  # b's data waits on our download limit, not the other way round
    assert closes(net.advance(IDLE_TIMEOUT)) == {"a": "idle timeout"}  # a sent nothing for 300 s
    assert "b" in net.core.peers
    net.core.reading_resumed("b", 400.0)  # 150 s waited: b's idle clock moves 150 s on
    assert closes(net.advance(IDLE_TIMEOUT + 150 - 1)) == {}
    assert closes(net.advance(IDLE_TIMEOUT + 150)) == {"b": "idle timeout"}


def test_a_peer_sitting_on_requests_is_snubbed_its_blocks_cancelled_and_asked_again() -> None:
    meta, _ = torrent(64, 4 * BLOCK)
    net = Net(leecher(meta))
    a = Remote("a", meta, answers=False)
    net.connect(a, 0.0)
    first = set(a.wire.peer_requests)
    assert len(first) == MIN_QUEUE
    net.advance(SNUB_TIMEOUT - 0.5)
    assert not a.of(RequestCancelled)
    net.advance(SNUB_TIMEOUT)
    assert {(e.index, e.begin, e.length) for e in a.of(RequestCancelled)} == first
    b = Remote("b", meta)  # a peer that answers takes over, a's old blocks included
    net.connect(b, SNUB_TIMEOUT + 1)
    got = {(e.index, e.begin, e.length) for e in b.of(BlockRequested)}
    assert first <= got
    assert {a.index for a in net.actions if isinstance(a, WritePiece)} >= {i for i, _, _ in first}


def test_interested_peers_are_unchoked_up_to_the_slots_and_a_lost_interest_is_choked_next_round() -> None:
    meta, _ = torrent(8, 4 * BLOCK)
    net = Net(seeder(meta))
    remotes = [Remote(c, meta, seed=False) for c in "abcdef"]
    for i, r in enumerate(remotes):
        net.connect(r, 0.1 * i)
        r.wire.send_interested()
        net.pump(0.1 * i)
    unchoked = [r for r in remotes if r.of(Unchoke)]
    assert len(unchoked) == net.core.choker.slots + 1  # four regular slots and the optimistic one
    waiting = [r for r in remotes if not r.of(Unchoke)]
    assert len(waiting) == 1
    quitter = unchoked[0]
    quitter.wire.send_not_interested()
    net.pump(1.0)
    assert not quitter.of(Choke)
    net.advance(10.0)  # the next choke round
    assert quitter.of(Choke) and waiting[0].of(Unchoke)


def test_endgame_asks_twice_and_cancels_the_duplicate() -> None:
    meta, _ = torrent(2, 4 * BLOCK)
    net = Net(leecher(meta))
    a, b = Remote("a", meta, answers=False), Remote("b", meta, answers=False)
    net.connect(a, 0.0)
    assert len(a.wire.peer_requests) == 8  # every block of the torrent
    net.connect(b, 0.1)
    assert b.wire.peer_requests == a.wire.peer_requests  # endgame: the same blocks from b too
    b.answers = True
    b.respond(b.of(BlockRequested))
    net.pump(0.2)
    assert {(e.index, e.begin) for e in a.of(RequestCancelled)} == {(r.index, r.begin) for r in b.of(BlockRequested)}
    assert sorted(w.index for w in net.actions if isinstance(w, WritePiece)) == [0, 1]
    assert net.core.stats.redundant_bytes == 0


def test_a_piece_that_fails_its_hash_check_bans_the_only_peer_that_sent_it() -> None:
    content = random.Random(5).randbytes(4 * 4 * BLOCK)
    meta, _ = torrent(4, 4 * BLOCK, content)
    net = Net(leecher(meta))
    liar = Remote("l", meta)  # answers with zeros
    net.connect(liar, 0.0)
    writes = [a for a in net.actions if isinstance(a, WritePiece)]
    assert writes and writes[0].data != content[:4 * BLOCK]
    net.core.piece_written(writes[0].index, False, 1.0)  # storage's verdict: hash mismatch
    acts = net.pump(1.0)
    assert PeerBanned(liar.remote, f"sent piece {writes[0].index} that failed the hash check") in acts
    assert liar.key in closes(acts)
    st = net.core.stats
    assert st.hash_failures == 1 and st.peers_banned == 1 and liar.remote in net.core.banned
    assert net.core.add_peer("l2", liar.remote, False, 2.0) == "banned"
    for w in writes[1:]:  # the liar's other pieces fail too; nobody else is to blame
        net.core.piece_written(w.index, False, 2.5)
    assert net.core.stats.peers_banned == 1
    honest = Remote("h", meta, content=content)  # its pieces are fetched again from an honest peer
    net.connect(honest, 3.0)
    for w in [a for a in net.actions if isinstance(a, WritePiece) and a not in writes]:
        assert w.data == content[w.index * 4 * BLOCK:(w.index + 1) * 4 * BLOCK]
        net.core.piece_written(w.index, True, 4.0)
        net.pump(4.0)
    assert net.core.picker is not None and net.core.picker.complete
    assert Completed(flush=True) in net.actions


def test_a_magnet_fetches_the_info_dict_installs_it_then_downloads() -> None:
    meta, _ = torrent(1000, 4 * BLOCK)  # 20 kB of hashes: two metadata pieces
    info = meta.info_bytes
    assert info is not None and len(info) > 16384
    magnet = Metainfo(meta.info_hash, "magnet")
    core = SwarmCore(magnet, b"-IT0001-" + bytes(12), rng=random.Random(1))
    net = Net(core)
    s = Remote("s", meta, info=info)
    net.connect(s, 0.0)
    installs = [a for a in net.actions if isinstance(a, InstallMetadata)]
    assert len(installs) == 1 and installs[0].meta.info_bytes == info and core.meta.info_bytes == info
    assert not s.of(BlockRequested)  # nothing to ask for before storage has the pieces
    core.set_pieces([], None, 1.0)  # storage installed it
    net.pump(1.0)
    assert s.of(Interested) and s.of(BlockRequested)


def test_a_magnet_is_interested_in_a_seed_before_its_metadata_so_requests_need_no_extra_round_trip() -> None:
    """Over I2P each round trip is 1-3 s: the unchoke must come back with the metadata, not after it."""
    meta, _ = torrent(8, BLOCK)
    info = meta.info_bytes
    magnet = Metainfo(meta.info_hash, "magnet")
    core = SwarmCore(magnet, b"-IT0001-" + bytes(12), rng=random.Random(1))
    net = Net(core)
    s = Remote("s", meta, info=info)
    empty = Remote("e", meta, seed=False, info=info)
    net.connect(s, 0.0)
    net.connect(empty, 0.0)
    assert s.of(Interested) and not empty.of(Interested)  # a peer with nothing is not bothered
    assert [a for a in net.actions if isinstance(a, InstallMetadata)]
    assert not s.of(BlockRequested)
    core.set_pieces([], None, 1.0)
    s.events.clear()
    empty.events.clear()
    for a in core.take_actions():  # what the core sends once storage has the pieces, before any peer answers
        if isinstance(a, Send):
            r = net.remotes[a.peer]  # type: ignore[index]
            r.events += r.wire.receive_data(a.data)
    assert s.of(BlockRequested), "already unchoked: the requests go out with no answer awaited"
    assert len(s.of(Interested)) == 0  # said once, before the metadata
    assert not empty.of(Interested) and not empty.of(BlockRequested)


@pytest.mark.parametrize("piece_mib, budget_mib, num", [(16, 8, 4), (2, 8, 12)])
def test_piece_buffers_stay_within_the_byte_budget_whatever_the_piece_length(piece_mib: int, budget_mib: int,
                                                                             num: int) -> None:
    piece, budget = piece_mib * MiB, budget_mib * MiB
    meta, _ = torrent(num, piece)
    net = Net(leecher(meta, buffer_budget=budget))
    bound = max(budget, piece)
    remotes = [Remote(c, meta) for c in "abcdefgh"]
    for i, r in enumerate(remotes):
        net.connect(r, 0.01 * i)
    held = 0
    done: set[int] = set()
    now = 1.0
    while len(done) < num:
        picker = net.core.picker
        assert picker is not None
        pending = [a for a in net.actions if isinstance(a, WritePiece) and a.index not in done]
        held = net.core.buffered_bytes + sum(len(w.data) for w in pending)
        assert held <= bound and picker.in_progress_bytes <= bound
        assert len(pending) >= 1, "nothing written: the download stalled"
        w = pending[0]  # storage is slow: one verdict at a time
        net.core.piece_written(w.index, True, now)
        done.add(w.index)
        net.pump(now)
        now += 0.1
    assert all(r.of(BlockRequested) for r in remotes)  # a piece larger than the budget is shared by all
    assert Completed(flush=True) in net.actions


def test_serving_blocks_goes_through_storage_and_counts_uploads() -> None:
    meta, _ = torrent(8, 4 * BLOCK)
    net = Net(seeder(meta))
    a = Remote("a", meta, seed=False)
    net.connect(a, 0.0)
    a.wire.send_interested()
    net.pump(0.0)
    a.wire.send_request(3, 0, BLOCK)
    a.wire.send_request(3, BLOCK, BLOCK)
    a.wire.send_cancel(3, BLOCK, BLOCK)
    acts = net.pump(0.5)
    serves = [x for x in acts if isinstance(x, ServeBlock)]
    assert [(s.index, s.begin) for s in serves] == [(3, 0), (3, BLOCK)]
    assert net.core.upload_wanted("a", 3, 0, BLOCK) and not net.core.upload_wanted("a", 3, BLOCK, BLOCK)
    assert net.core.block_read("a", 3, 0, b"x" * BLOCK, 0.6)
    net.pump(0.6)
    assert [(e.index, e.begin, e.data) for e in a.of(BlockReceived)] == [(3, 0, b"x" * BLOCK)]
    assert net.core.uploaded == BLOCK


def test_a_destination_calling_again_replaces_its_old_connection_but_not_within_seconds() -> None:
    meta, _ = torrent(8, 4 * BLOCK)
    net = Net(seeder(meta))
    a = Remote("a", meta, seed=False)
    net.connect(a, 0.0, outgoing=False)
    assert net.core.add_peer("a-again", a.remote, False, 5.0) == "already connected"  # a simultaneous open
    assert net.core.add_peer("a-restarted", a.remote, False, 20.0) is None  # it restarted: the old one goes
    assert closes(net.core.take_actions()) == {"a": "replaced by a new connection from the same destination"}
    assert list(net.core.peers) == ["a-restarted"]


def private_torrent() -> Metainfo:
    info = bencode({b"name": b"p.bin", b"piece length": 16384, b"length": 16384 * 4, b"pieces": bytes(80),
                    b"private": 1})
    return Metainfo(hashlib.sha1(info).digest(), "p.bin", info_bytes=info)


def b32(name: str) -> str:
    from i2ptorrent.transport.sam_protocol import b32_from_hash
    return b32_from_hash(hashlib.sha256(name.encode()).digest())


def pex_remotes(net: Net, meta: Metainfo, names: str, now: float) -> list[Remote]:
    remotes = []
    for name in names:
        r = Remote(name, meta)
        r.remote = b32(name)  # a canonical address: what i2p_pex carries is its 32-byte hash
        r.wire.pex = True
        net.connect(r, now)
        r.wire.send_extension_handshake()
        net.pump(now)
        remotes.append(r)
    return remotes


def test_i2p_pex_tells_each_peer_of_the_others_and_passes_on_what_peers_tell() -> None:
    from i2ptorrent.engine.actions import PeersFound

    meta, _ = torrent(4, 16384)
    net = Net(leecher(meta))
    a, b = pex_remotes(net, meta, "ab", 0.0)
    net.advance(5.0)
    assert a.of(PexReceived) == [PexReceived((b.remote,), ())]
    assert b.of(PexReceived) == [PexReceived((a.remote,), ())]
    c = b32("c")
    a.wire.send_pex([c, b.remote, a.remote])
    assert net.pump(6.0) == [PeersFound((c, b.remote))]  # never the sender itself
    a.wire.send_pex([b32("d")])
    assert net.pump(7.0) == []  # too soon after the last one: ignored
    net.core.close_peer("b", "gone", 8.0)
    net.pump(8.0)
    net.advance(70.0)
    assert a.of(PexReceived)[-1] == PexReceived((), (b.remote,))


def test_no_i2p_pex_for_a_private_torrent() -> None:
    meta = private_torrent()
    assert meta.private
    net = Net(leecher(meta))
    a, b = pex_remotes(net, meta, "ab", 0.0)
    net.advance(70.0)
    assert "i2p_pex" not in a.wire.peer_extensions and a.of(PexReceived) == []
    a.wire.peer_extensions["i2p_pex"] = 9
    a.wire.send_pex([b.remote])
    assert not any(type(x).__name__ == "PeersFound" for x in net.pump(71.0))
