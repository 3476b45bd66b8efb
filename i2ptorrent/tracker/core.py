"""The tracker's state machine, sans-I/O: messages and the clock in, frames to send out.

The asyncio server owns sockets and calls in with a connection id, the peer's identity (from the
transport, never from the message) and `now`. Each call returns the frames to write as
(connection id, bytes) pairs; a bad message only ever produces a 'failure reason' for its sender.

Several instances can share swarms (`instance` set): the core then still answers from its local view
of every swarm, and leaves what others must hear in `changes` and `outbox` (see shared.py) for the
store adapter to carry; what they heard comes back through `apply`, `deliver_*` and `redeemed`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Mapping, Protocol

from . import classic, messages
from .identity import PeerIdentity
from .limits import TokenBucket, TrackerLimits
from .messages import Announce, Answer, Scrape, TrackerProtocolError
from .shared import PeerChange, Redeem, Relay, RemoteAnswer, RemoteOffer
from .swarm import Swarm, SwarmPeer

Outgoing = list[tuple[int, bytes]]

NOT_ALLOWED = "access denied: this is a private tracker"
RATE_LIMITED = "rate limit exceeded, slow down"
STORE_UNAVAILABLE = "tracker storage unavailable, try again later"
SYNC_INTERVAL = 60.0  # a peer that keeps announcing is re-shared this often (its expiry elsewhere)
MAX_HELD = 16  # messages held per connection while its invite is checked in the shared store


class AccessPolicy(Protocol):
    """`redeem` spends an invite at once; a policy with `shared = True` has its invites spent by the
    store adapter instead (the core emits `Redeem`)."""

    def is_allowed(self, name: str) -> bool: ...
    def redeem(self, token: str, name: str) -> bool: ...  # expiries are wall-clock: it reads its own clock


class OpenAccess:
    """Everyone may use the tracker."""

    def is_allowed(self, name: str) -> bool:
        return True

    def redeem(self, token: str, name: str) -> bool:
        return False


@dataclass(slots=True)
class Connection:
    """One open WebSocket: who it is, which swarms it joined, which offers it may answer."""

    conn_id: int
    identity: PeerIdentity
    last_active: float
    invite: str | None = None
    # (info_hash, peer_id) pairs: the reference client shares one socket between all its torrents
    # and all clients of a process, so one socket may hold several peers, even in one swarm.
    joined: set[tuple[str, str]] = field(default_factory=set)
    # (info_hash, offer_id) -> (offerer's instance, its conn id, its peer_id, expiry): plain tuples of
    # atoms, which the garbage collector stops tracking, because there can be hundreds of thousands.
    pending: OrderedDict[tuple[str, str], tuple[str, int, str, float]] = field(default_factory=OrderedDict)
    origin: dict[str, str] = field(default_factory=dict)  # added to what we relay from it
    held: list[str | bytes] = field(default_factory=list)  # messages waiting on a shared-store redeem
    redeeming: str | None = None  # the invite the shared store is being asked to spend
    refused: str | None = None  # an invite the shared store refused (not asked again)

    def __post_init__(self) -> None:
        self.origin = self.identity.origin()


@dataclass(frozen=True, slots=True)
class SwarmStats:
    info_hash: str
    complete: int
    incomplete: int
    downloaded: int


class TrackerCore:
    def __init__(self, limits: TrackerLimits | None = None, access: AccessPolicy | None = None,
                 instance: str = "") -> None:
        self.limits = limits or TrackerLimits()
        self.access: AccessPolicy = access or OpenAccess()
        self.instance = instance  # "" alone; else this instance's id among those sharing swarms
        self.changes: list[PeerChange] = []  # our peers' changes, for the store (shared mode only)
        self.outbox: list[Relay] = []  # offers/answers for other instances, invites to spend
        self.swarms: OrderedDict[str, Swarm] = OrderedDict()
        self.connections: dict[int, Connection] = {}
        self._per_identity: dict[str, int] = {}  # open WebSockets per identity name
        self._buckets: dict[str, TokenBucket] = {}
        self.counters = {"announces": 0, "answers": 0, "scrapes": 0, "offers_relayed": 0,
                         "failures": 0, "denied": 0, "http_announces": 0, "offers_to_instances": 0,
                         "answers_to_instances": 0, "offers_from_instances": 0, "answers_from_instances": 0}

    # -- WebSocket connections -------------------------------------------------------------------

    def connect(self, conn_id: int, identity: PeerIdentity, now: float, invite: str | None = None) -> bool:
        """Register a new WebSocket; False when this identity already has too many open."""
        if self._per_identity.get(identity.name, 0) >= self.limits.max_connections_per_peer:
            return False
        self._per_identity[identity.name] = self._per_identity.get(identity.name, 0) + 1
        self.connections[conn_id] = Connection(conn_id, identity, now, invite)
        return True

    def disconnect(self, conn_id: int) -> None:
        """The socket closed: like the reference server, its peers leave their swarms ('stopped')."""
        conn = self.connections.pop(conn_id, None)
        if conn is None:
            return
        name = conn.identity.name
        left = self._per_identity.get(name, 1) - 1
        if left > 0:
            self._per_identity[name] = left
        else:
            self._per_identity.pop(name, None)
        for info_hash, peer_id in conn.joined:
            swarm = self.swarms.get(info_hash)
            if swarm is not None:
                peer = swarm.ws.get(peer_id)
                if peer is not None and peer.conn == conn_id and peer.home == self.instance:
                    swarm.remove(peer_id, conn_id)
                    self._share_removal(info_hash, peer)
                    if not swarm:
                        del self.swarms[info_hash]

    def ws_message(self, conn_id: int, data: str | bytes, now: float) -> Outgoing:
        conn = self.connections.get(conn_id)
        if conn is None:
            return []
        conn.last_active = now
        lim = self.limits
        try:
            msg = messages.parse_ws_message(data, max_size=lim.max_message_size, max_offers=lim.max_offers,
                                            max_scrape=lim.max_scrape)
        except TrackerProtocolError as err:
            self.counters["failures"] += 1
            return [(conn_id, messages.failure(str(err), messages.failure_context(data, lim.max_message_size)))]
        if not self._rate_ok(conn.identity.name, now):  # first: refusals cost work too
            self.counters["failures"] += 1
            return [(conn_id, messages.failure(RATE_LIMITED, messages.context_of(msg)))]
        invite = getattr(msg, "invite", None) or conn.invite
        if self._redeems_in_store and invite and invite != conn.refused \
                and not self.access.is_allowed(conn.identity.name):
            return self._hold(conn, data, invite, msg)
        if not self._admit(conn.identity, invite, now):
            self.counters["denied"] += 1
            return [(conn_id, messages.failure(NOT_ALLOWED, messages.context_of(msg)))]
        if isinstance(msg, Announce):
            return self._ws_announce(conn, msg, now)
        if isinstance(msg, Answer):
            return self._ws_answer(conn, msg, now)
        return [(conn_id, self._scrape_reply_ws(msg))]

    def _ws_announce(self, conn: Connection, msg: Announce, now: float) -> Outgoing:
        self.counters["announces"] += 1
        conn_id = conn.conn_id
        swarm = self.swarms.get(msg.info_hash)
        me = self.instance
        if msg.event == "stopped":
            key = (msg.info_hash, msg.peer_id)
            if swarm is not None and key in conn.joined:
                gone = swarm.remove(msg.peer_id, conn_id)
                conn.joined.discard(key)
                if gone is not None:
                    self._share_removal(msg.info_hash, gone)
            out_swarm = swarm
        else:
            if swarm is None:
                swarm = self._new_swarm(msg.info_hash)
            else:
                self.swarms.move_to_end(msg.info_hash)
            holder = swarm.ws.get(msg.peer_id)
            moved = holder is not None and (holder.conn != conn_id or holder.home != me)
            if moved and holder.identity.name != conn.identity.name:  # type: ignore[union-attr]
                # Someone else's peer_id: taking it over would steal their answers.
                self.counters["failures"] += 1
                return [(conn_id, messages.failure("peer_id in use", messages.context_of(msg)))]
            if moved and holder.home == me and holder.conn is not None:  # type: ignore[union-attr]
                # The same destination reconnected: the old socket no longer owns this peer.
                old = self.connections.get(holder.conn)  # type: ignore[union-attr]
                if old is not None:
                    old.joined.discard((msg.info_hash, msg.peer_id))
            downloaded = swarm.downloaded
            peer, evicted = swarm.upsert(msg.peer_id, conn.identity, conn_id, msg.event, msg.left, now, me)
            conn.joined.add((msg.info_hash, msg.peer_id))
            self._forget(evicted)
            if me:
                self._share(msg.info_hash, peer, swarm.downloaded != downloaded, evicted, now)
            out_swarm = swarm
        complete = out_swarm.complete if out_swarm is not None else 0
        incomplete = out_swarm.incomplete if out_swarm is not None else 0
        out: Outgoing = [(conn_id, messages.announce_reply(
            msg.info_hash, self.limits.announce_interval, complete, incomplete))]
        if msg.offers and swarm is not None and msg.event != "stopped":
            tail = messages.offer_relay_tail(msg.info_hash, msg.peer_id, conn.origin)
            asker = swarm.ws.get(msg.peer_id)
            targets = swarm.pick(swarm.ws, len(msg.offers), exclude=msg.peer_id,
                                 leechers_only=asker is not None and asker.complete)
            expires = now + self.limits.offer_timeout
            remote = 0
            for peer, offer in zip(targets, msg.offers):
                if peer.home != me:
                    if peer.conn is not None:
                        self.outbox.append(RemoteOffer(peer.home, peer.conn, peer.peer_id, msg.info_hash,
                                                       offer.offer_id, me, conn_id, msg.peer_id,
                                                       messages.offer_relay(offer, tail)))
                        remote += 1
                    continue
                target = self.connections.get(peer.conn) if peer.conn is not None else None
                if target is None or target is conn:
                    continue
                self._expect_answer(target, msg.info_hash, offer.offer_id, (me, conn_id, msg.peer_id, expires))
                out.append((target.conn_id, messages.offer_relay(offer, tail)))
            self.counters["offers_relayed"] += len(out) - 1 + remote
            self.counters["offers_to_instances"] += remote
        if swarm is not None and not swarm:
            self.swarms.pop(msg.info_hash, None)
        return out

    def _ws_answer(self, conn: Connection, msg: Answer, now: float) -> Outgoing:
        """Route an answer to the peer whose offer we relayed to this connection; nothing else."""
        self.counters["answers"] += 1
        pending = conn.pending.pop((msg.info_hash, msg.offer_id), None)
        if pending is None or pending[3] < now or pending[2] != msg.to_peer_id:
            return []  # like the reference server: an unroutable answer gets no reply
        if pending[0] != self.instance:
            self.counters["answers_to_instances"] += 1
            self.outbox.append(RemoteAnswer(pending[0], pending[1], msg.info_hash, msg.to_peer_id,
                                            messages.answer_relay(msg, conn.origin)))
            return []
        return self.deliver_answer(pending[1], msg.info_hash, msg.to_peer_id, messages.answer_relay(msg, conn.origin))

    # -- what other instances sent (shared mode) -------------------------------------------------

    def deliver_offer(self, relay: RemoteOffer, now: float) -> Outgoing:
        """An offer another instance relayed to one of our connections."""
        self.counters["offers_from_instances"] += 1
        target = self.connections.get(relay.target_conn)
        if target is None or (relay.info_hash, relay.target_peer_id) not in target.joined:
            return []
        self._expect_answer(target, relay.info_hash, relay.offer_id,
                            (relay.from_home, relay.from_conn, relay.from_peer_id, now + self.limits.offer_timeout))
        return [(target.conn_id, relay.frame)]

    def deliver_answer(self, conn_id: int, info_hash: str, to_peer_id: str, frame: bytes) -> Outgoing:
        """An answer for the offerer on our connection `conn_id`, if that peer is still there."""
        target = self.connections.get(conn_id)
        if target is None or (info_hash, to_peer_id) not in target.joined:
            return []
        return [(target.conn_id, frame)]

    def apply(self, changes: list[PeerChange], downloaded: Mapping[str, int] | None = None) -> None:
        """Bring the local view up to date with changes the store carried (ours included: the store's
        order is the one every instance ends up agreeing on). Downloads count once: ours were
        counted when they happened; a snapshot gives each swarm's count (`downloaded`)."""
        me = self.instance
        for ch in changes:
            swarm = self.swarms.get(ch.info_hash)
            table_conn = ch.conn if ch.websocket else None
            if ch.removed:
                peer = swarm.get(ch.peer_id, table_conn) if swarm is not None else None
                if peer is not None and peer.home == ch.home and (peer.conn == ch.conn or not ch.websocket):
                    swarm.remove(ch.peer_id, table_conn)  # type: ignore[union-attr]
                    self._forget([peer])
                    if not swarm:
                        del self.swarms[ch.info_hash]
                continue
            if swarm is None:
                swarm = self._new_swarm(ch.info_hash)
            current = swarm.get(ch.peer_id, table_conn)
            if current is not None and current.home == me and ch.home != me and current.conn is not None:
                old = self.connections.get(current.conn)  # our peer reconnected elsewhere
                if old is not None:
                    old.joined.discard((ch.info_hash, ch.peer_id))
            _, evicted = swarm.put(ch.peer_id, PeerIdentity(ch.name, ch.destination), table_conn, ch.home,
                                   ch.complete, ch.seen)
            self._forget(evicted)
            if ch.completed and ch.home != me:
                swarm.downloaded += 1
        for info_hash, count in (downloaded or {}).items():
            if info_hash in self.swarms:
                self.swarms[info_hash].downloaded = count

    def drop_others(self) -> None:
        """Forget every peer of other instances (before reloading them from a snapshot)."""
        for info_hash in list(self.swarms):
            swarm = self.swarms[info_hash]
            for table in (swarm.ws, swarm.http):
                for peer in [p for p in table.values() if p.home != self.instance]:
                    swarm.remove(peer.peer_id, peer.conn if table is swarm.ws else None)
            if not swarm:
                del self.swarms[info_hash]

    def reshare(self, now: float) -> None:
        """Record every peer of ours again (the store lost what we sent)."""
        for info_hash, swarm in self.swarms.items():
            for table in (swarm.ws, swarm.http):
                for peer in table.values():
                    if peer.home == self.instance:
                        peer.synced = float("-inf")
                        self._share(info_hash, peer, False, [], now)

    def redeemed(self, conn_id: int, ok: bool | None, now: float) -> Outgoing:
        """The store's verdict on a connection's invite (None: the store could not be asked);
        the messages held meanwhile are handled now, in order."""
        conn = self.connections.get(conn_id)
        if conn is None:
            return []
        held, conn.held = conn.held, []
        token, conn.redeeming = conn.redeeming, None
        if ok is None:
            self.counters["failures"] += len(held)
            return [(conn_id, messages.failure(STORE_UNAVAILABLE, messages.failure_context(
                data, self.limits.max_message_size))) for data in held]
        if not ok:
            conn.refused = token  # asked once: its other messages with this invite are refused at once
        out: Outgoing = []
        for data in held:
            out += self.ws_message(conn_id, data, now)
        return out

    def _scrape_reply_ws(self, msg: Scrape) -> bytes:
        self.counters["scrapes"] += 1
        return messages.scrape_reply(self._scrape_files(msg.info_hashes), self.limits.announce_interval)

    # -- classic HTTP ----------------------------------------------------------------------------

    def http_announce(self, identity: PeerIdentity, raw_query: str, now: float,
                      invite: str | None = None) -> bytes:
        try:
            req = classic.parse_announce(raw_query, self.limits.max_numwant)
        except TrackerProtocolError as err:
            self.counters["failures"] += 1
            return classic.failure(str(err))
        if not self._rate_ok(identity.name, now):
            return classic.failure(RATE_LIMITED)
        if not self._admit(identity, req.invite or invite, now):
            self.counters["denied"] += 1
            return classic.failure(NOT_ALLOWED)
        self.counters["http_announces"] += 1
        swarm = self.swarms.get(req.info_hash)
        if req.event == "stopped":
            if swarm is not None:
                holder = swarm.http.get(req.peer_id)
                if holder is not None and holder.identity.name == identity.name:
                    swarm.remove(req.peer_id, None)
                    self._share_removal(req.info_hash, holder)
                    if not swarm:
                        del self.swarms[req.info_hash]
            peers: list[SwarmPeer] = []
        else:
            if swarm is None:
                swarm = self._new_swarm(req.info_hash)
            else:
                self.swarms.move_to_end(req.info_hash)
            holder = swarm.http.get(req.peer_id)
            if holder is not None and holder.identity.name != identity.name:
                return classic.failure("peer_id in use")
            downloaded = swarm.downloaded
            peer, evicted = swarm.upsert(req.peer_id, identity, None, req.event, req.left, now, self.instance)
            self._forget(evicted)
            if self.instance:
                self._share(req.info_hash, peer, swarm.downloaded != downloaded, evicted, now)
            peers = swarm.pick(swarm.http, req.numwant, exclude=req.peer_id,
                               exclude_name=identity.name if identity.is_i2p else None, leechers_only=peer.complete)
        complete = swarm.complete if swarm is not None else 0
        incomplete = swarm.incomplete if swarm is not None else 0
        return classic.announce_reply(self.limits.http_announce_interval, complete, incomplete,
                                      [(p.peer_id, p.identity) for p in peers], req.compact)

    def http_scrape(self, identity: PeerIdentity, raw_query: str, now: float) -> bytes:
        try:
            hashes = classic.parse_scrape(raw_query, self.limits.max_scrape)
        except TrackerProtocolError as err:
            return classic.failure(str(err))
        if not self._rate_ok(identity.name, now):
            return classic.failure(RATE_LIMITED)
        if not self.access.is_allowed(identity.name):
            self.counters["denied"] += 1
            return classic.failure(NOT_ALLOWED)
        self.counters["scrapes"] += 1
        return classic.scrape_reply(self._scrape_files(hashes))

    # -- housekeeping ----------------------------------------------------------------------------

    def expire(self, now: float) -> list[int]:
        """Age out peers, offers and rate buckets; returns idle connections the server should close."""
        before = now - self.limits.peer_ttl
        for info_hash in list(self.swarms):
            swarm = self.swarms[info_hash]
            self._forget(swarm.expire(before))
            if not swarm:
                del self.swarms[info_hash]
        idle_before = now - self.limits.idle_timeout
        idle: list[int] = []
        for conn in self.connections.values():
            while conn.pending:
                first = next(iter(conn.pending.values()))
                if first[3] >= now:
                    break
                conn.pending.popitem(last=False)
            if conn.last_active < idle_before:
                idle.append(conn.conn_id)
        for name in [n for n, b in self._buckets.items() if b.full(now) and n not in self._per_identity]:
            del self._buckets[name]
        return idle

    def enforce_access(self) -> list[int]:
        """After the access list changed: drop revoked peers; returns their connections to close."""
        closing = [c.conn_id for c in self.connections.values() if not self.access.is_allowed(c.identity.name)]
        for info_hash in list(self.swarms):
            swarm = self.swarms[info_hash]
            for table in (swarm.ws, swarm.http):
                for peer in [p for p in table.values() if not self.access.is_allowed(p.identity.name)]:
                    swarm.remove(peer.peer_id, peer.conn)
            if not swarm:
                del self.swarms[info_hash]
        return closing

    def is_allowed(self, identity: PeerIdentity) -> bool:
        return self.access.is_allowed(identity.name)

    def swarm_stats(self) -> list[SwarmStats]:
        return [SwarmStats(h, s.complete, s.incomplete, s.downloaded) for h, s in self.swarms.items()]

    def stats(self) -> dict[str, object]:
        swarms = self.swarms.values()
        return {
            "torrents": len(self.swarms),
            "peers": sum(len(s) for s in swarms),
            "seeders": sum(s.complete for s in swarms),
            "leechers": sum(s.incomplete for s in swarms),
            "completed": sum(s.downloaded for s in swarms),
            "websockets": len(self.connections),
            **self.counters,
        }

    # -- internals -------------------------------------------------------------------------------

    def _admit(self, identity: PeerIdentity, invite: str | None, now: float) -> bool:
        if self.access.is_allowed(identity.name):
            return True
        return invite is not None and not self._redeems_in_store and self.access.redeem(invite, identity.name)

    def _rate_ok(self, name: str, now: float) -> bool:
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = TokenBucket(self.limits.rate_per_second, self.limits.rate_burst, now)
        return bucket.take(now)

    def _new_swarm(self, info_hash: str) -> Swarm:
        while len(self.swarms) >= self.limits.max_swarms:
            _, old = self.swarms.popitem(last=False)
            self._forget(list(old.ws.values()))
        swarm = self.swarms[info_hash] = Swarm(info_hash, self.limits.max_swarm_peers)
        return swarm

    @property
    def _redeems_in_store(self) -> bool:
        return getattr(self.access, "shared", False)

    def _hold(self, conn: Connection, data: str | bytes, invite: str, msg: messages.Message) -> Outgoing:
        """Keep the message until the store has spent (or refused) its invite; ask once at a time."""
        if len(conn.held) >= MAX_HELD:
            self.counters["failures"] += 1
            return [(conn.conn_id, messages.failure(RATE_LIMITED, messages.context_of(msg)))]
        if conn.redeeming is None:
            conn.redeeming = invite
            self.outbox.append(Redeem(conn.conn_id, invite, conn.identity.name))
        conn.held.append(data)
        return []

    def _expect_answer(self, target: Connection, info_hash: str, offer_id: str,
                       offerer: tuple[str, int, str, float]) -> None:
        pending = target.pending
        key = (info_hash, offer_id)
        pending[key] = offerer
        pending.move_to_end(key)
        if len(pending) > self.limits.max_pending_offers:
            pending.popitem(last=False)

    def _share(self, info_hash: str, peer: SwarmPeer, completed: bool, evicted: list[SwarmPeer],
               now: float) -> None:
        """Record our peer's announce for the store: at once when it is new, moved or changed, and
        every SYNC_INTERVAL while it only re-announces (its expiry elsewhere)."""
        for gone in evicted:
            self._share_removal(info_hash, gone)
        if not completed and now - peer.synced < SYNC_INTERVAL:
            return
        peer.synced = now
        ident = peer.identity
        self.changes.append(PeerChange(info_hash, peer.peer_id, peer.conn is not None, peer.home, peer.conn,
                                       ident.name, ident.destination, peer.complete, now, completed))

    def _share_removal(self, info_hash: str, peer: SwarmPeer) -> None:
        if self.instance:
            self.changes.append(PeerChange(info_hash, peer.peer_id, peer.conn is not None, peer.home, peer.conn,
                                           removed=True))

    def _forget(self, peers: list[SwarmPeer]) -> None:
        """Peers that left a swarm without their socket closing: unlink them from the socket."""
        for peer in peers:
            if peer.conn is None or peer.home != self.instance:
                continue
            conn = self.connections.get(peer.conn)
            if conn is None:
                continue
            for info_hash, peer_id in list(conn.joined):
                if peer_id == peer.peer_id and (info_hash not in self.swarms
                                                or self.swarms[info_hash].ws.get(peer_id) is not peer):
                    conn.joined.discard((info_hash, peer_id))

    def _scrape_files(self, hashes: tuple[str, ...]) -> dict[str, tuple[int, int, int]]:
        if not hashes:
            hashes = tuple(self.swarms)[-self.limits.max_scrape:]
        files: dict[str, tuple[int, int, int]] = {}
        for h in hashes:
            swarm = self.swarms.get(h)
            files[h] = (swarm.complete, swarm.incomplete, swarm.downloaded) if swarm else (0, 0, 0)
        return files

