"""The tracker clients the engine announces with: WebSocket (WebTorrent) and classic HTTP (I2P).

Both reach the tracker through an `opener` that returns a ByteStream, so on I2P they run over SAM
streams (`session.connect(<tracker>.b32.i2p)`) and in tests over loopback TCP. The WebSocket client
keeps the reference client's timers: announce every 30 s until the tracker gives an interval, offers
expire after 50 s, and reconnects back off 10 s * 2^n (at most 1 h) plus up to 5 min of jitter.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Coroutine
from urllib.parse import quote_from_bytes, urlsplit

from ..loopback import is_loopback
from ..wire.bencode import bdecode
from ..wire.errors import ProtocolError
from ..supervisor import Supervisor
from ..transport.stream import AsyncioByteStream, ByteStream
from . import messages
from ..transport.sam_protocol import b32_address
from .classic import parse_compact_peers
from .identity import b32_to_hash
from .messages import TrackerProtocolError
from .websocket import Closed, Message, WebSocketClient, WebSocketError

log = logging.getLogger(__name__)

Opener = Callable[[], Awaitable[ByteStream]]
OfferFactory = Callable[[bytes, int], Awaitable[list[tuple[bytes, str]]]]
"""(info_hash, count) -> up to count (offer_id of 20 bytes, offer SDP) pairs."""


@dataclass(frozen=True, slots=True)
class ClientTimers:
    announce_interval: float = 30.0  # until the tracker sends its own
    offer_timeout: float = 50.0
    reconnect_min: float = 10.0
    reconnect_max: float = 3600.0
    reconnect_jitter: float = 300.0
    connect_timeout: float = 120.0  # I2P tunnels take a while


# -- events the engine receives -----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AnnounceResult:
    info_hash: bytes
    complete: int | None
    incomplete: int | None
    interval: int | None


@dataclass(frozen=True, slots=True)
class SignalReceived:
    """An offer or answer from another peer; remote_* is its I2P address when our tracker relayed it."""

    info_hash: bytes
    peer_id: bytes
    offer_id: bytes
    sdp: str
    remote_b32: str | None
    remote_destination: str | None

    @classmethod
    def from_relay(cls, msg: messages.SignalRelay) -> "SignalReceived":
        return cls(_b(msg.info_hash), _b(msg.peer_id), _b(msg.offer_id), msg.sdp,
                   msg.origin.b32, msg.origin.destination)


class OfferReceived(SignalReceived):
    """Answer it with `client.answer(info_hash, peer_id, offer_id, sdp)`."""

    __slots__ = ()


class AnswerReceived(SignalReceived):
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class OfferExpired:
    info_hash: bytes
    offer_id: bytes


@dataclass(frozen=True, slots=True)
class TrackerFailure:
    info_hash: bytes | None
    reason: str


TrackerEvent = AnnounceResult | OfferReceived | AnswerReceived | OfferExpired | TrackerFailure


def _b(s: str) -> bytes:
    return s.encode("latin-1")


def _s(b: bytes) -> str:
    if len(b) != 20:
        raise ValueError("ids are 20 bytes")
    return b.decode("latin-1")


@dataclass(slots=True)
class _Torrent:
    info_hash: bytes
    left: int | None
    next_announce: float
    interval: float
    started: bool = False


class WebSocketTrackerClient:
    """One WebSocket to one tracker URL, shared by all our torrents (as in the reference client)."""

    def __init__(self, url: str, opener: Opener, peer_id: bytes, *, offer_factory: OfferFactory | None = None,
                 numwant: int = 5, timers: ClientTimers | None = None, invite: str | None = None,
                 clock: Callable[[], float] = time.monotonic, max_message: int = 256 * 1024) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"not a WebSocket tracker URL: {url!r}")
        self.url = url
        self.host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        query = parts.query
        if invite:  # also in the URL, so a private tracker can admit us at the upgrade
            query = (query + "&" if query else "") + "invite=" + quote_from_bytes(invite.encode(), safe="")
        self.path = (parts.path or "/") + ("?" + query if query else "")
        self.opener = opener
        self.peer_id = _s(peer_id)
        self.offer_factory = offer_factory
        self.numwant = min(numwant, 5)
        self.timers = timers or ClientTimers()
        self.invite = invite
        self.clock = clock
        self.max_message = max_message
        self.events: asyncio.Queue[TrackerEvent] = asyncio.Queue(maxsize=10_000)
        self.connected = asyncio.Event()
        self.last_error: str | None = None  # why the last connection failed or ended; None once connected
        self._torrents: dict[str, _Torrent] = {}
        self._offers: dict[str, tuple[str, float]] = {}  # offer_id -> (info_hash, expires)
        self._scrapes: list[asyncio.Future[dict[bytes, tuple[int, int, int]]]] = []
        self._ws: WebSocketClient | None = None
        self._stream: ByteStream | None = None
        self._write_lock = asyncio.Lock()
        self._tasks = Supervisor(log)
        self._closing = False
        self.retries = 0

    # -- the engine's API ------------------------------------------------------------------------

    def start(self) -> None:
        self._spawn(self._run(), "connection")
        self._spawn(self._ticker(), "ticker")

    async def close(self) -> None:
        """Send 'stopped' for every torrent (best effort), then close the socket."""
        self._closing = True
        if self.connected.is_set():
            for t in list(self._torrents.values()):
                try:
                    await self._send_announce(t, "stopped", offers=False)
                except (OSError, WebSocketError):
                    break
        self._tasks.cancel()
        if self._ws is not None and self._stream is not None:
            self._ws.close()
            try:
                await self._stream.write(self._ws.data_to_send())
            except (OSError, ConnectionError):
                pass
        if self._stream is not None:
            await self._stream.close()
        self.connected.clear()

    def add(self, info_hash: bytes, left: int | None = None) -> None:
        """Start announcing a torrent ('started' now, then every interval)."""
        key = _s(info_hash)
        if key not in self._torrents:
            t = self._torrents[key] = _Torrent(info_hash, left, self.clock(), self.timers.announce_interval)
            if self.connected.is_set():
                t.next_announce = self.clock() + t.interval
                self._spawn(self._announce(t), "announce")

    def update_left(self, info_hash: bytes, left: int) -> None:
        t = self._torrents.get(_s(info_hash))
        if t is not None:
            was_incomplete = t.left != 0
            t.left = left
            if left == 0 and was_incomplete and t.started and self.connected.is_set():
                self._spawn(self._announce_completed(t), "announce completed")

    async def remove(self, info_hash: bytes) -> None:
        t = self._torrents.pop(_s(info_hash), None)
        if t is not None and self.connected.is_set():
            await self._send_announce(t, "stopped", offers=False)

    async def answer(self, info_hash: bytes, to_peer_id: bytes, offer_id: bytes, sdp: str) -> None:
        await self._send({"action": "announce", "info_hash": _s(info_hash), "peer_id": self.peer_id,
                          "to_peer_id": _s(to_peer_id), "offer_id": _s(offer_id),
                          "answer": {"type": "answer", "sdp": sdp}})

    async def scrape(self, info_hashes: list[bytes], timeout: float = 60.0) -> dict[bytes, tuple[int, int, int]]:
        """(complete, incomplete, downloaded) per info hash."""
        await asyncio.wait_for(self.connected.wait(), timeout)
        fut: asyncio.Future[dict[bytes, tuple[int, int, int]]] = asyncio.get_running_loop().create_future()
        self._scrapes.append(fut)
        await self._send({"action": "scrape", "info_hash": [_s(h) for h in info_hashes]})
        return await asyncio.wait_for(fut, timeout)

    async def announce_now(self, info_hash: bytes) -> None:
        t = self._torrents.get(_s(info_hash))
        if t is not None:
            await self._announce(t)

    # -- connection ------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        self._tasks.spawn(coro, f"tracker {self.url} {what}")

    def backoff(self) -> float:
        """10 s * 2^n (at most 1 h) as the reference client, but with jitter of at most half the base
        (and 5 min): the reference adds up to 5 min even to the first retry, and an I2P tunnel that
        dropped one connection should not cost a user minutes."""
        t = self.timers
        base = min(2 ** self.retries * t.reconnect_min, t.reconnect_max)
        return base + random.random() * min(t.reconnect_jitter, base / 2)

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self._session()
            except (OSError, ConnectionError, WebSocketError, asyncio.TimeoutError) as err:
                self.last_error = str(err) or err.__class__.__name__
                log.info("tracker %s: %s", self.url, err)
            except Exception as err:  # the transport's own errors (SAMError...) must not end the loop
                self.last_error = str(err) or err.__class__.__name__
                log.warning("tracker %s: %r", self.url, err)
            finally:
                self.connected.clear()
                if self._stream is not None:
                    await self._stream.close()
                self._stream = self._ws = None
                for t in self._torrents.values():
                    t.started = False
            if self._closing:
                break
            delay = self.backoff()
            self.retries += 1
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        stream = await asyncio.wait_for(self.opener(), self.timers.connect_timeout)
        self._stream = stream
        ws = WebSocketClient(self.host, self.path, max_message=self.max_message)
        self._ws = ws
        await stream.write(ws.data_to_send())
        while True:
            data = await asyncio.wait_for(stream.read(65536), self.timers.connect_timeout) \
                if not ws.is_open else await stream.read(65536)
            if not data:
                raise ConnectionError("tracker closed the connection")
            events = ws.receive(data)
            pending = ws.data_to_send()
            if pending:
                async with self._write_lock:
                    await stream.write(pending)
            for event in events:
                if isinstance(event, Message):
                    self._on_message(event.data)
                elif isinstance(event, Closed):
                    raise ConnectionError(f"tracker closed the WebSocket ({event.code})")
                else:  # Opened
                    self.retries = 0
                    self.last_error = None
                    self.connected.set()
                    for t in self._torrents.values():
                        t.next_announce = self.clock() + t.interval
                        self._spawn(self._announce(t), "announce")

    async def _send(self, obj: dict[str, object]) -> None:
        ws, stream = self._ws, self._stream
        if ws is None or stream is None or not ws.is_open:
            raise ConnectionError("not connected to the tracker")
        async with self._write_lock:
            ws.send(messages.dumps(obj))
            await stream.write(ws.data_to_send())

    # -- announces -------------------------------------------------------------------------------

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = self.clock()
            for offer_id, (info_hash, expires) in list(self._offers.items()):
                if expires < now:
                    del self._offers[offer_id]
                    self._emit(OfferExpired(_b(info_hash), _b(offer_id)))
            if not self.connected.is_set():
                continue
            for t in list(self._torrents.values()):
                if t.next_announce <= now:
                    t.next_announce = now + t.interval
                    self._spawn(self._announce(t), "announce")

    async def _announce(self, t: _Torrent) -> None:
        event = "started" if not t.started else None
        try:
            await self._send_announce(t, event, offers=True)
            t.started = True
        except (OSError, ConnectionError, WebSocketError) as err:
            log.info("announce to %s failed: %s", self.url, err)

    async def _announce_completed(self, t: _Torrent) -> None:
        try:
            await self._send_announce(t, "completed", offers=False)
        except (OSError, ConnectionError, WebSocketError) as err:  # the next announce says left=0 anyway
            log.info("announce 'completed' to %s failed: %s", self.url, err)

    async def _send_announce(self, t: _Torrent, event: str | None, offers: bool) -> None:
        info_hash = _s(t.info_hash)
        msg: dict[str, object] = {"action": "announce", "info_hash": info_hash, "peer_id": self.peer_id,
                                  "uploaded": 0, "downloaded": 0}
        if t.left is not None:
            msg["left"] = t.left
        if event is not None:
            msg["event"] = event
        if self.invite:
            msg["invite"] = self.invite
        if offers and self.offer_factory is not None and self.numwant > 0:
            try:
                made = (await self.offer_factory(t.info_hash, self.numwant))[:self.numwant]
            except Exception:  # the engine's WebRTC side failing must not stop announces
                log.exception("making offers failed; announcing without offers")
                made = []
            expires = self.clock() + self.timers.offer_timeout
            msg["numwant"] = len(made)
            msg["offers"] = [{"offer": {"type": "offer", "sdp": sdp}, "offer_id": _s(oid)} for oid, sdp in made]
            for oid, _ in made:
                self._offers[_s(oid)] = (info_hash, expires)
        await self._send(msg)

    # -- replies ---------------------------------------------------------------------------------

    def _emit(self, event: TrackerEvent) -> None:
        try:
            self.events.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("tracker events not consumed; dropping %s", type(event).__name__)

    def _on_message(self, data: bytes) -> None:
        try:
            msg = messages.parse_server_message(data, max_size=self.max_message)
        except TrackerProtocolError as err:
            log.info("bad message from tracker %s: %s", self.url, err)
            return
        if isinstance(msg, messages.ScrapeReply):
            if self._scrapes:
                fut = self._scrapes.pop(0)
                if not fut.done():
                    fut.set_result({_b(h): v for h, v in msg.files.items()})
            return
        if isinstance(msg, messages.Failure):
            if msg.action == "scrape" and self._scrapes:
                fut = self._scrapes.pop(0)
                if not fut.done():
                    fut.set_exception(TrackerError(msg.reason))
                return
            self._emit(TrackerFailure(_b(msg.info_hash) if msg.info_hash else None, msg.reason))
            return
        if msg.info_hash not in self._torrents:
            return  # another torrent's message on a shared socket, or one we stopped
        if isinstance(msg, messages.AnnounceReply):
            t = self._torrents[msg.info_hash]
            if msg.interval:
                t.interval = max(10.0, float(msg.interval))
                t.next_announce = self.clock() + t.interval  # like the reference: the timer restarts
            self._emit(AnnounceResult(t.info_hash, msg.complete, msg.incomplete, msg.interval))
            return
        if msg.peer_id == self.peer_id:
            return  # our own offer or answer
        if isinstance(msg, messages.OfferRelay):
            self._emit(OfferReceived.from_relay(msg))
        else:
            known = self._offers.get(msg.offer_id)
            if known is None or known[0] != msg.info_hash:
                return  # an answer to an offer we never made or that expired
            del self._offers[msg.offer_id]
            self._emit(AnswerReceived.from_relay(msg))


class TrackerError(Exception):
    """The tracker answered with a 'failure reason' (or an unreadable reply)."""


# -- classic HTTP -------------------------------------------------------------------------------------

MAX_HTTP_REPLY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpAnnounceResult:
    interval: int
    complete: int | None
    incomplete: int | None
    peers: list[str]  # '.b32.i2p' names


async def http_get(opener: Opener, url: str, query: str, timeout: float = 120.0) -> bytes:
    """One GET over a fresh stream (Connection: close); returns the body of a 200 reply.

    Reads until the reply is complete by its own framing (Content-Length, or the last chunk), not until
    the stream closes: on I2P a close can take longer than 20 s after the last byte."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    path = (parts.path or "/") + ("?" + parts.query + "&" + query if parts.query else "?" + query)
    stream = await asyncio.wait_for(opener(), timeout)
    try:
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: i2ptorrent\r\n"
                   "Accept-Encoding: identity\r\nConnection: close\r\n\r\n").encode("ascii")
        await stream.write(request)
        buf = bytearray()

        async def read_reply() -> None:
            while len(buf) <= MAX_HTTP_REPLY and not _reply_complete(buf):
                data = await stream.read(65536)
                if not data:
                    return
                buf.extend(data)

        await asyncio.wait_for(read_reply(), timeout)
    finally:
        await stream.close()
    return parse_http_response(bytes(buf))


def _split_reply(raw: bytes) -> tuple[str, dict[str, str], bytes] | None:
    """(status line, lower-cased headers, body so far), or None while the head is incomplete."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, body


def _dechunk(body: bytes) -> tuple[bytes, bool]:
    """(the data of a chunked body so far, whether its last chunk arrived)."""
    out, rest = bytearray(), body
    while True:
        size_line, sep, after = rest.partition(b"\r\n")
        if not sep:
            return bytes(out), False
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            raise TrackerError("bad chunk") from None
        if size == 0:  # then optional trailers, then an empty line
            return bytes(out), after.startswith(b"\r\n") or b"\r\n\r\n" in after
        if len(after) < size + 2:
            return bytes(out + after[:size]), False
        out += after[:size]
        rest = after[size + 2:]


def _reply_complete(raw: bytes | bytearray) -> bool:
    """Whether the reply's own framing says it is all here (a reply framed by close never is)."""
    split = _split_reply(bytes(raw))
    if split is None:
        return False
    _, headers, body = split
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return _dechunk(body)[1]
    length = headers.get("content-length")
    return length is not None and length.isdigit() and len(body) >= int(length)


def parse_http_response(raw: bytes) -> bytes:
    """Status line, headers, then a Content-Length, chunked or read-to-close body."""
    if len(raw) > MAX_HTTP_REPLY:
        raise TrackerError("reply too large")
    split = _split_reply(raw)
    if split is None:
        raise TrackerError("incomplete HTTP reply")
    status_line, headers, body = split
    status = status_line.split(" ", 2)
    if len(status) < 2 or status[1] != "200":
        raise TrackerError(f"HTTP status {status_line[:100]!r}")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return _dechunk(body)[0]
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        return body[:int(length)]
    return body


def _bdecode(body: bytes) -> dict[bytes, object]:
    try:
        reply = bdecode(body)
    except ProtocolError as err:
        raise TrackerError(f"bad bencoded reply: {err}") from None
    if not isinstance(reply, dict):
        raise TrackerError("reply is not a dictionary")
    reason = reply.get(b"failure reason")
    if reason is not None:
        raise TrackerError(reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason))
    return reply


def _peer_name(ip: object) -> str | None:
    """A non-compact peer's 'ip': a full base64 destination (often + '.i2p') or a .b32.i2p name."""
    if not isinstance(ip, bytes) or len(ip) > 1024:
        return None
    text = ip.decode("ascii", "replace")
    if b32_to_hash(text) is not None:
        return text.lower()
    try:
        return b32_address(text[:-4] if text.endswith(".i2p") else text)
    except (ValueError, IndexError):
        return None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None


async def http_announce(opener: Opener, url: str, info_hash: bytes, peer_id: bytes, *, event: str | None = None,
                        left: int = 0, uploaded: int = 0, downloaded: int = 0, numwant: int = 50,
                        invite: str | None = None, ip: str | None = None,
                        timeout: float = 120.0) -> HttpAnnounceResult:
    """A classic I2P announce: compact=1, port=6881 placeholder, our identity is the SAM stream's."""
    params = [("info_hash", info_hash), ("peer_id", peer_id), ("port", b"6881"),
              ("uploaded", str(uploaded).encode()), ("downloaded", str(downloaded).encode()),
              ("left", str(left).encode()), ("compact", b"1"), ("numwant", str(numwant).encode())]
    if event:
        params.append(("event", event.encode()))
    if ip:  # other I2P trackers may want our full destination (ours ignores it and uses SAM's)
        params.append(("ip", ip.encode()))
    if invite:
        params.append(("invite", invite.encode()))
    query = "&".join(f"{k}={quote_from_bytes(v, safe='')}" for k, v in params)
    reply = _bdecode(await http_get(opener, url, query, timeout))
    peers_raw = reply.get(b"peers", b"")
    if isinstance(peers_raw, bytes):
        try:
            peers = parse_compact_peers(peers_raw)
        except TrackerProtocolError as err:
            raise TrackerError(str(err)) from None
    elif isinstance(peers_raw, list):
        peers = [name for p in peers_raw if isinstance(p, dict) and (name := _peer_name(p.get(b"ip")))]
    else:
        raise TrackerError("bad peers field")
    interval = _int_or_none(reply.get(b"interval")) or 1800
    return HttpAnnounceResult(interval, _int_or_none(reply.get(b"complete")),
                              _int_or_none(reply.get(b"incomplete")), peers)


async def http_scrape(opener: Opener, url: str, info_hashes: list[bytes],
                      timeout: float = 120.0) -> dict[bytes, tuple[int, int, int]]:
    """`url` is the announce URL; like other clients we swap /announce for /scrape."""
    scrape_url = url.replace("/announce", "/scrape", 1)
    query = "&".join("info_hash=" + quote_from_bytes(h, safe="") for h in info_hashes)
    reply = _bdecode(await http_get(opener, scrape_url, query, timeout))
    files = reply.get(b"files")
    if not isinstance(files, dict):
        raise TrackerError("bad files field")
    out: dict[bytes, tuple[int, int, int]] = {}
    for key, value in files.items():
        if isinstance(key, bytes) and isinstance(value, dict):
            out[key] = (_int_or_none(value.get(b"complete")) or 0, _int_or_none(value.get(b"incomplete")) or 0,
                        _int_or_none(value.get(b"downloaded")) or 0)
    return out


def tcp_opener(host: str, port: int) -> Opener:
    """An opener for loopback tests and the demo (refuses anything that is not loopback)."""
    if not is_loopback(host):
        raise ValueError("plain TCP is only for loopback")

    async def open_() -> ByteStream:
        reader, writer = await asyncio.open_connection(host, port)
        return AsyncioByteStream(reader, writer, f"loopback:{host}:{port}")

    return open_
