"""The bridge's tracker endpoint, sans-I/O: browser messages in, replies and "answer this offer" out.

A browser WebTorrent client announces to the bridge as to any WebSocket tracker. The bridge is the only
other member of every swarm: it answers the browser's offers itself (one data channel per browser peer
and torrent) and joins each channel to the I2P side. Messages are parsed by the tracker's parser with the
tracker's bounds; every failure is a 'failure reason' to that socket alone, and a socket that keeps
failing, or floods, is closed. Time is passed in; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..tracker.limits import TokenBucket
from ..tracker.messages import (
    Announce, Answer, Offer, ParseContext, Scrape, TrackerProtocolError, announce_reply, answer_relay,
    context_of, failure, failure_context, parse_ws_message, scrape_reply,
)

RATE_LIMITED = "rate limit exceeded, slow down"


@dataclass(frozen=True, slots=True)
class BridgeLimits:
    max_message_size: int = 64 * 1024  # one WebSocket message from the browser
    max_offers: int = 10  # offers read per announce (WebTorrent sends at most 5)
    max_scrape: int = 64
    rate_per_second: float = 5.0  # sustained messages per socket
    rate_burst: float = 40.0
    max_strikes: int = 20  # refused messages before the socket is closed
    max_sockets: int = 64  # browser tracker sockets at once
    max_torrents_per_socket: int = 64
    channels_per_peer: int = 1  # data channels per (browser peer, torrent)
    max_channels: int = 64  # live and connecting channels, whole bridge
    max_connecting: int = 16  # offers being answered at once, whole bridge
    max_connecting_per_socket: int = 4  # so one socket cannot hold every slot with offers that never connect
    announce_interval: int = 30  # seconds; the browser re-announces (with fresh offers) this often
    connect_timeout: float = 30.0  # offer received -> data channel open
    idle_timeout: float = 5 * 60.0  # a socket that sent nothing for this long is closed


@dataclass(frozen=True, slots=True)
class SwarmView:
    """What the bridge can offer a browser for one torrent (the scrape/announce counts)."""

    complete: int
    incomplete: int


Serves = Callable[[bytes, float], SwarmView | None]
"""(info_hash, browser's `left`) -> SwarmView when the bridge will connect this torrent, else None."""

ChannelKey = tuple[str, str]  # (browser peer_id, info_hash), binary strings


@dataclass(frozen=True, slots=True)
class Send:
    socket_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class CloseSocket:
    socket_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class AnswerOffer:
    """Answer `offer` with a new peer connection; report back with channel_open / channel_closed."""

    socket_id: int
    key: ChannelKey
    offer: Offer
    left: float


@dataclass(frozen=True, slots=True)
class DropChannels:
    """The browser stopped this torrent: close its channels."""

    key: ChannelKey


Action = Send | CloseSocket | AnswerOffer | DropChannels


@dataclass(slots=True)
class _Socket:
    bucket: TokenBucket
    last_seen: float
    strikes: int = 0
    connecting: int = 0
    torrents: set[ChannelKey] = field(default_factory=set)


class BridgeCore:
    """Every browser socket's state and the bridge-wide channel budget."""

    def __init__(self, peer_id: bytes, serves: Serves, limits: BridgeLimits | None = None) -> None:
        if len(peer_id) != 20:
            raise ValueError("peer_id must be 20 bytes")
        self.limits = limits or BridgeLimits()
        self.peer_id = peer_id.decode("latin-1")
        self._serves = serves
        self._sockets: dict[int, _Socket] = {}
        self._channels: dict[ChannelKey, int] = {}
        self._connecting = 0
        self.refused = 0  # messages answered with a failure, for stats and tests

    # -- sockets ---------------------------------------------------------------------------------

    @property
    def channels(self) -> int:
        return sum(self._channels.values())

    def connect(self, socket_id: int, now: float) -> bool:
        if len(self._sockets) >= self.limits.max_sockets:
            return False
        self._sockets[socket_id] = _Socket(TokenBucket(self.limits.rate_per_second, self.limits.rate_burst, now), now)
        return True

    def disconnect(self, socket_id: int) -> None:
        # Data channels live on without the tracker socket, as between two browsers.
        self._sockets.pop(socket_id, None)

    def expire(self, now: float) -> list[Action]:
        return [CloseSocket(sid, "idle") for sid, s in self._sockets.items()
                if now - s.last_seen > self.limits.idle_timeout]

    # -- channels (reported by the adapter) ------------------------------------------------------

    def channel_open(self, socket_id: int, key: ChannelKey) -> None:
        self._connected(socket_id)

    def channel_closed(self, socket_id: int, key: ChannelKey, opened: bool) -> None:
        if not opened:
            self._connected(socket_id)
        n = self._channels.get(key, 0) - 1
        if n > 0:
            self._channels[key] = n
        else:
            self._channels.pop(key, None)

    def _connected(self, socket_id: int) -> None:
        self._connecting = max(0, self._connecting - 1)
        sock = self._sockets.get(socket_id)
        if sock is not None:
            sock.connecting = max(0, sock.connecting - 1)

    # -- messages --------------------------------------------------------------------------------

    def receive(self, socket_id: int, data: str | bytes, now: float) -> list[Action]:
        sock = self._sockets.get(socket_id)
        if sock is None:
            return []
        sock.last_seen = now
        lim = self.limits
        if not sock.bucket.take(now):
            return self._refuse(socket_id, sock, RATE_LIMITED, failure_context(data, lim.max_message_size))
        try:
            msg = parse_ws_message(data, max_size=lim.max_message_size, max_offers=lim.max_offers,
                                   max_scrape=lim.max_scrape)
        except TrackerProtocolError as e:
            return self._refuse(socket_id, sock, str(e), failure_context(data, lim.max_message_size))
        if isinstance(msg, Scrape):
            return [Send(socket_id, self._scrape(msg))]
        if isinstance(msg, Answer):
            return self._refuse(socket_id, sock, "the bridge sends no offers", context_of(msg))
        return self._announce(socket_id, sock, msg, context_of(msg))

    def _refuse(self, socket_id: int, sock: _Socket, reason: str, ctx: ParseContext) -> list[Action]:
        self.refused += 1
        sock.strikes += 1
        out: list[Action] = [Send(socket_id, failure(reason, ctx))]
        if sock.strikes >= self.limits.max_strikes:
            out.append(CloseSocket(socket_id, f"too many refused messages (last: {reason})"))
        return out

    def _announce(self, socket_id: int, sock: _Socket, msg: Announce, ctx: ParseContext) -> list[Action]:
        if msg.peer_id == self.peer_id:
            return self._refuse(socket_id, sock, "peer_id is the bridge's own", ctx)
        key: ChannelKey = (msg.peer_id, msg.info_hash)
        if msg.event == "stopped":
            sock.torrents.discard(key)
            return [Send(socket_id, announce_reply(msg.info_hash, self.limits.announce_interval, 0, 0)),
                    DropChannels(key)]
        if key not in sock.torrents:
            if len(sock.torrents) >= self.limits.max_torrents_per_socket:
                return self._refuse(socket_id, sock, "too many torrents on this socket", ctx)
            sock.torrents.add(key)
        view = self._serves(msg.info_hash.encode("latin-1"), msg.left)
        out: list[Action] = [Send(socket_id, announce_reply(
            msg.info_hash, self.limits.announce_interval,
            view.complete if view else 0, view.incomplete if view else 0))]
        if view is None:
            return out
        for offer in msg.offers:
            if not self._budget(sock, key):
                break
            self._channels[key] = self._channels.get(key, 0) + 1
            self._connecting += 1
            sock.connecting += 1
            out.append(AnswerOffer(socket_id, key, offer, msg.left))
        return out

    def _budget(self, sock: _Socket, key: ChannelKey) -> bool:
        lim = self.limits
        return (self._channels.get(key, 0) < lim.channels_per_peer and self.channels < lim.max_channels
                and self._connecting < lim.max_connecting and sock.connecting < lim.max_connecting_per_socket)

    def answer(self, key: ChannelKey, offer_id: str, sdp: str) -> bytes:
        """The frame that carries our answer to the browser (as a tracker would relay it)."""
        return answer_relay(Answer(info_hash=key[1], peer_id=self.peer_id, to_peer_id=key[0],
                                   offer_id=offer_id, sdp=sdp), {})

    def offer_failed(self, key: ChannelKey, reason: str) -> bytes:
        """A failure frame naming the torrent, for an offer we could not answer (bad SDP)."""
        self.refused += 1
        return failure(reason, ParseContext(action="announce", info_hash=key[1]))

    def _scrape(self, msg: Scrape) -> bytes:
        files: dict[str, tuple[int, int, int]] = {}
        for ih in msg.info_hashes:
            view = self._serves(ih.encode("latin-1"), float("inf"))
            files[ih] = (view.complete, view.incomplete, 0) if view else (0, 0, 0)
        return scrape_reply(files, self.limits.announce_interval)
