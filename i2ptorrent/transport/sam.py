"""The asyncio SAM v3 client: the only module in i2ptorrent that talks to the I2P router.

It replaces i2plib (which fails on Python >= 3.10) and keeps its verbs where they fit: `new_destination`,
`create_session` (here `StreamSession.create` / `DatagramSession.create`), `stream_connect`
(`StreamSession.connect`) and `stream_accept` (`StreamSession.accept`). Parsing lives in sam_protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from i2ptorrent.bucket import TokenBucket
from i2ptorrent.loopback import is_loopback
from i2ptorrent.transport.linger import closed_destinations, load_close, save_close, settle_left
from i2ptorrent.transport.sam_protocol import (
    MAX_REPLY_LINE,
    SIGNATURE_TYPE_ED25519,
    Reply,
    SAMError,
    SAMProtocolError,
    b32_address,
    command,
    i2p_b64decode,
    is_b32,
    is_liveness_answer,
    liveness_command,
    option_words,
    parse_peer_line,
    parse_reply,
    public_destination_length,
    public_from_private,
    split_forwarded_datagram,
)
from i2ptorrent.transport.stream import AsyncioByteStream

from ..private_files import tighten, write_private

__all__ = [
    "SAMAddress",
    "SAMError",
    "SAMProtocolError",
    "SAMUnavailable",
    "Destination",
    "StreamSession",
    "DatagramSession",
    "SAMStream",
    "Forwarder",
    "new_destination",
    "load_or_create_destination",
    "b32_address",
    "hello",
]

log = logging.getLogger(__name__)

STREAM_BUFFER = 256 * 1024
"""asyncio reader limit for SAM sockets: bounds a reply line and lets bulk data flow without stalls."""

CONNECT_TIMEOUT = 10.0
REPLY_TIMEOUT = 30.0
SESSION_TIMEOUT = 180.0
"""i2pd answers SESSION CREATE only when the tunnels are ready: 20 s on a local router, longer on I2P."""

DATAGRAM_LIMIT = 32768
"""The router truncates larger datagrams silently (still delivering them), so we refuse them."""


class SAMUnavailable(SAMError):
    """Nothing answers SAM at the given address."""

    def __init__(self, message: str) -> None:
        super().__init__(message, result="NO_BRIDGE")


@dataclass(frozen=True)
class SAMAddress:
    host: str = "127.0.0.1"
    port: int = 7656
    udp_port: int | None = None

    @property
    def udp(self) -> tuple[str, int]:
        """Where datagrams are sent: i2pd 2.45 always listens on port - 1 (there is no option for it)."""
        return (self.host, self.udp_port if self.udp_port is not None else self.port - 1)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Destination:
    """An I2P identity: the public destination (what peers connect to) and its private keys."""

    public: str
    private: str
    key_file: Path | None = field(default=None, compare=False)
    """Where the keys are kept, if anywhere: the close of a session under them is noted beside it, for the
    next process (transport/linger.py)."""

    @property
    def b32(self) -> str:
        return b32_address(self.public)

    @classmethod
    def from_private(cls, private: str) -> "Destination":
        return cls(public_from_private(private), private)

    def save(self, path: Path) -> None:
        """Write the private keys with mode 0600, atomically, so a crash never leaves half a key."""
        write_private(path, self.private + "\n", durable=True)

    @classmethod
    def load(cls, path: Path) -> "Destination":
        path = Path(path)
        tighten(path)
        text = path.read_text("ascii").strip()
        try:
            raw = i2p_b64decode(text)
            if len(raw) <= public_destination_length(raw):
                raise ValueError("it holds no private keys")
        except ValueError as exc:
            raise ValueError(f"{path} is not an I2P private key file: {exc}") from None
        return cls(public_from_private(text), text, key_file=path)


async def _open(sam: SAMAddress) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            return await asyncio.open_connection(sam.host, sam.port, limit=STREAM_BUFFER)
    except (OSError, TimeoutError) as exc:
        raise SAMUnavailable(f"no SAM bridge answers at {sam} ({exc.__class__.__name__}: {exc})") from None


async def _read_reply(reader: asyncio.StreamReader, timeout: float = REPLY_TIMEOUT) -> Reply:
    return parse_reply(await _read_line(reader, timeout))


async def _read_line(reader: asyncio.StreamReader, timeout: float = REPLY_TIMEOUT) -> bytes:
    try:
        async with asyncio.timeout(timeout):
            line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise SAMProtocolError(f"SAM bridge closed mid-reply: {exc.partial[:80]!r}") from None
        raise SAMError("the SAM bridge closed the connection", "CLOSED") from None
    except asyncio.LimitOverrunError:
        raise SAMProtocolError("SAM reply line too long") from None
    except TimeoutError:
        raise SAMError(f"no reply from the SAM bridge within {timeout:.0f} s", "TIMEOUT") from None
    except (ConnectionError, OSError) as exc:
        raise SAMError(f"SAM connection lost: {exc}", "CLOSED") from None
    return line


async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    """HELLO with MIN=3.0 MAX=3.3; returns the version. i2pd 2.45 and 2.56 answer 3.0 to that (3.1 to
    MAX=3.1, NOVERSION to MIN=3.2)."""
    writer.write(command("HELLO", "VERSION", MIN="3.0", MAX="3.3"))
    reply = (await _read_reply(reader)).check("HELLO", "REPLY")
    return reply.values.get("VERSION", "3.0")


async def _connect_hello(sam: SAMAddress) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await _open(sam)
    try:
        await hello(reader, writer)
    except BaseException:
        writer.close()
        raise
    return reader, writer


async def sam_answers(sam: SAMAddress) -> bool:
    """Whether a SAM bridge answers HELLO at `sam`."""
    try:
        reader, writer = await _connect_hello(sam)
    except SAMError:
        return False
    writer.close()
    return True


async def new_destination(sam: SAMAddress) -> Destination:
    """DEST GENERATE with Ed25519 signatures (the router's default is the obsolete DSA_SHA1)."""
    reader, writer = await _connect_hello(sam)
    try:
        writer.write(command("DEST", "GENERATE", SIGNATURE_TYPE=SIGNATURE_TYPE_ED25519))
        reply = (await _read_reply(reader)).check("DEST", "REPLY")
        try:
            return Destination(reply.values["PUB"], reply.values["PRIV"])
        except KeyError:
            raise SAMProtocolError("DEST REPLY without PUB and PRIV") from None
    finally:
        writer.close()


async def load_or_create_destination(path: Path, sam: SAMAddress) -> Destination:
    """Our persistent identity: the same .b32 after every restart, keys in a 0600 file."""
    path = Path(path)
    if path.exists():
        return Destination.load(path)
    dest = await new_destination(sam)
    dest.save(path)
    return replace(dest, key_file=path)


def _consume(task: asyncio.Future[object]) -> None:
    """Retrieve a cancelled helper task's outcome so asyncio does not log it as lost."""
    if not task.cancelled():
        task.exception()


class SAMStream(AsyncioByteStream):
    """A connected SAM stream; `remote_destination` is the peer's full public destination when known.
    `on_end` hears once that its socket is gone: its session must not close before (transport/linger.py)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, remote: str,
                 remote_destination: str | None = None,
                 on_end: Callable[["SAMStream"], None] | None = None) -> None:
        super().__init__(reader, writer, remote)
        self.remote_destination = remote_destination
        self._on_end = on_end

    async def close(self) -> None:
        try:
            await super().close()
        except BaseException:  # cancelled or timed out while the router was not reading: end it now
            self._writer.transport.abort()
            raise
        finally:
            self._ended()

    def abort(self) -> None:
        """End the socket now, unsent bytes dropped: its session is closing, which ends the stream anyway,
        and a graceful close waits for a router that may have stopped reading."""
        self._closed = True
        self._writer.transport.abort()
        self._ended()

    def _ended(self) -> None:
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end(self)


class _Control:
    """A session's control socket: requests answered in order, PINGs answered, death noticed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, version: str = "3.0",
                 on_closed: Callable[[], None] | None = None) -> None:
        self.reader = reader
        self.writer = writer
        self.version = version  # what HELLO negotiated: decides how we ping
        self.lock = asyncio.Lock()
        self.replies: deque[asyncio.Future[Reply]] = deque()
        self.closed = asyncio.Event()
        self.error: SAMError | None = None
        self._task: asyncio.Task[None] | None = None
        self._on_closed = on_closed

    def start(self) -> None:
        self._task = asyncio.create_task(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            while True:
                reply = await _read_reply(self.reader, timeout=float("inf"))
                if reply.topic == "PING":
                    self.writer.write(b"PONG" + b"".join(b" " + k.encode() for k in reply.values) + b"\n")
                    continue
                if self.replies:
                    self.replies.popleft().set_result(reply)
                else:
                    log.debug("unsolicited SAM reply: %s %s", reply.topic, reply.kind)
        except SAMError as exc:
            self.error = SAMError(f"the router closed the SAM session ({exc.message})", "CLOSED")
        except asyncio.CancelledError:
            self.error = SAMError("SAM session closed", "CLOSED")
            raise
        finally:
            self.closed.set()
            if self._on_closed is not None:
                self._on_closed()
            while self.replies:
                fut = self.replies.popleft()
                if not fut.done():
                    fut.set_exception(self.error or SAMError("SAM session closed", "CLOSED"))

    async def request(self, line: bytes, timeout: float = REPLY_TIMEOUT) -> Reply:
        async with self.lock:
            if self.closed.is_set():
                raise self.error or SAMError("SAM session closed", "CLOSED")
            fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            self.replies.append(fut)
            self.writer.write(line)
            try:
                async with asyncio.timeout(timeout):
                    return await fut
            except TimeoutError:
                raise SAMError(f"no reply from the SAM bridge within {timeout:.0f} s", "TIMEOUT") from None

    async def ping(self, timeout: float) -> None:
        """Ask the router to answer on this socket within `timeout` s (SAMError TIMEOUT if it does not): a
        hung router keeps the socket open, so only an unanswered request tells."""
        token = secrets.token_hex(4)
        reply = await self.request(liveness_command(self.version, token), timeout=timeout)
        if not is_liveness_answer(reply, self.version, token):
            raise SAMProtocolError(f"unexpected answer to a liveness check: {reply.topic} {reply.kind}")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def _create_session(sam: SAMAddress, style: str, destination: Destination, options: dict[str, str],
                          session_id: str | None, extra: dict[str, str | int] | None = None,
                          timeout: float = SESSION_TIMEOUT) -> tuple[_Control, str]:
    session_id = session_id or f"i2pt-{secrets.token_hex(6)}"
    try:
        router, b32 = str(sam), destination.b32
    except ValueError as exc:  # keys that are no destination: say so before asking the router
        raise SAMError(f"invalid destination keys: {exc}", "INVALID_KEY") from None
    if destination.key_file is not None:
        load_close(destination.key_file, b32)  # a process that used these keys moments ago
    left = closed_destinations.wait_left(router, b32, time.time())
    if left > 0:
        log.info("waiting %.1f s before a new session as %s: the router drops the old one's destination "
                 "5 s after its close (see transport/linger.py)", left, b32[:12])
        await asyncio.sleep(left)

    def note_close() -> None:
        at = time.time()
        closed_destinations.closed(router, b32, at)
        if destination.key_file is not None:
            save_close(destination.key_file, router, at)

    reader, writer = await _open(sam)
    try:
        version = await hello(reader, writer)
    except BaseException:
        writer.close()
        raise
    words = [f"STYLE={style}", f"ID={session_id}", f"DESTINATION={destination.private}"]
    words += [f"{k}={v}" for k, v in (extra or {}).items()]
    words += option_words(options)
    writer.write(("SESSION CREATE " + " ".join(words) + "\n").encode("ascii"))
    try:
        reply = await _read_reply(reader, timeout=timeout)
        reply.check("SESSION", "STATUS")
    except BaseException:
        writer.close()
        note_close()  # the router may have made the session before we gave up on its answer
        raise
    control = _Control(reader, writer, version, on_closed=note_close)
    control.start()
    return control, session_id


class Forwarder:
    """A STREAM FORWARD registration; it lasts as long as its SAM socket stays open."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


class _Session:
    """What every SAM session shows of its control socket: its address, whether it is open, why it closed,
    and whether the router still answers (the SessionKeeper's view of a session)."""

    destination: Destination
    _control: _Control

    @property
    def b32(self) -> str:
        return self.destination.b32

    @property
    def closed(self) -> bool:
        return self._control.closed.is_set()

    @property
    def error(self) -> SAMError | None:
        """Why the session closed (None while it is open, or when we closed it)."""
        return self._control.error

    async def wait_closed(self) -> None:
        """Return once the session's control socket is gone (the router closed it, died, or we did)."""
        await self._control.closed.wait()

    async def ping(self, timeout: float = 5.0) -> None:
        """SAMError unless the router answers on the session's socket within `timeout` s."""
        await self._control.ping(timeout)


class StreamSession(_Session):
    """STYLE=STREAM: connect to and accept from other destinations, forward to a local server, look up names."""

    def __init__(self, sam: SAMAddress, destination: Destination, session_id: str, control: _Control) -> None:
        self.sam = sam
        self.destination = destination
        self.session_id = session_id
        self._control = control
        self._accept_lock = asyncio.Lock()
        self._streams: set[SAMStream] = set()  # open stream sockets: ended before the session closes
        self._pending: set[asyncio.StreamWriter] = set()  # CONNECT/ACCEPT sockets not yet a stream
        self._last_stream_end: float | None = None  # monotonic
        self._closing = False

    @classmethod
    async def create(cls, sam: SAMAddress, destination: Destination, options: dict[str, str] | None = None,
                     session_id: str | None = None, timeout: float = SESSION_TIMEOUT) -> "StreamSession":
        control, sid = await _create_session(sam, "STREAM", destination, options or {}, session_id,
                                             timeout=timeout)
        return cls(sam, destination, sid, control)

    @property
    def closed(self) -> bool:
        """True from the moment close() starts: a closing session takes no new work."""
        return self._closing or self._control.closed.is_set()

    def _check_open(self) -> None:
        if self.closed:
            raise self._control.error or SAMError("SAM session closed", "CLOSED")

    @contextlib.asynccontextmanager
    async def _socket(self) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        """A SAM socket for one CONNECT or ACCEPT. Until it becomes a tracked stream or closes, close() ends
        it too: the router may have just handed a stream to it."""
        reader, writer = await _connect_hello(self.sam)
        self._pending.add(writer)
        try:
            yield reader, writer
        finally:
            self._pending.discard(writer)

    def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, remote: str,
                remote_destination: str | None) -> SAMStream:
        """A stream socket of this session, tracked until it ends; one that arrives while the session closes
        is ended at once."""
        stream = SAMStream(reader, writer, remote, remote_destination, on_end=self._stream_ended)
        self._streams.add(stream)
        if self._closing:
            stream.abort()
            self._check_open()
        return stream

    def _stream_ended(self, stream: SAMStream) -> None:
        self._streams.discard(stream)
        self._last_stream_end = time.monotonic()

    async def connect(self, peer: str, timeout: float = 60.0, retry_interval: float = 1.0) -> SAMStream:
        """Open a stream to `peer` (a .b32.i2p address or a full base64 destination).

        CANT_REACH_PEER right after start is normal (the peer's lease set is not known yet), so it is
        retried until `timeout`; every other refusal is raised at once.
        """
        self._check_open()
        if is_b32(peer):
            remote, target = peer.lower(), peer.lower()
        else:
            try:
                remote = b32_address(peer)
            except ValueError:
                raise SAMError(f"not a .b32.i2p address or a base64 destination: {peer[:60]!r}",
                               "INVALID_KEY") from None
            target = peer
        deadline = time.monotonic() + timeout
        while True:
            async with self._socket() as (reader, writer):
                writer.write(command("STREAM", "CONNECT", ID=self.session_id, DESTINATION=target,
                                     SILENT="false"))
                try:
                    remaining = max(1.0, deadline - time.monotonic())
                    (await _read_reply(reader, timeout=remaining + REPLY_TIMEOUT)).check("STREAM", "STATUS")
                except SAMError as exc:
                    writer.close()
                    if exc.result not in ("CANT_REACH_PEER", "PEER_NOT_FOUND", "TIMEOUT"):
                        raise
                    if time.monotonic() + retry_interval >= deadline:
                        raise SAMError(f"cannot reach {remote} within {timeout:.0f} s ({exc.result})",
                                       exc.result) from None
                except BaseException:
                    writer.close()
                    raise
                else:
                    return self._stream(reader, writer, remote, None if target is remote else target)
            self._check_open()
            await asyncio.sleep(retry_interval)

    async def accept(self) -> SAMStream:
        """Wait for one incoming stream; the peer's identity is what the router reports, never a claim.

        Calls are serialised: i2pd 2.45 (SAM 3.1) mishandles several STREAM ACCEPTs pending on one
        session (accepting sockets closed, a peer's destination line delivered again as stream data).
        Streams that arrive between two accepts wait in the router.
        """
        async with self._accept_lock:
            return await self._accept_one()

    async def _accept_one(self) -> SAMStream:
        self._check_open()
        async with self._socket() as (reader, writer):
            return await self._accept_on(reader, writer)

    async def _accept_on(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> SAMStream:
        try:
            writer.write(command("STREAM", "ACCEPT", ID=self.session_id, SILENT="false"))
            first = await _read_line(reader)
            if not first.startswith(b"STREAM "):
                # i2pd 2.45 hands a stream that was already waiting to the new acceptor at once and writes
                # the caller's line before its STATUS reply (seen with callers arriving together).
                dest, _options = parse_peer_line(first)
                (await _read_reply(reader)).check("STREAM", "STATUS")
                return self._stream(reader, writer, b32_address(dest), dest)
            parse_reply(first).check("STREAM", "STATUS")
            closed = asyncio.ensure_future(self._control.closed.wait())
            line_task = asyncio.ensure_future(reader.readuntil(b"\n"))
            try:
                done, _ = await asyncio.wait({closed, line_task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
                if not line_task.done():
                    line_task.cancel()
                    line_task.add_done_callback(_consume)
            if line_task not in done:
                self._check_open()
            try:
                line = line_task.result()
            except asyncio.IncompleteReadError:
                raise SAMError("the router closed the accepting socket", "CLOSED") from None
            except asyncio.LimitOverrunError:
                raise SAMProtocolError("peer destination line too long") from None
            if len(line) > MAX_REPLY_LINE:
                raise SAMProtocolError("peer destination line too long")
            dest, _options = parse_peer_line(line)
        except BaseException:
            writer.close()
            raise
        return self._stream(reader, writer, b32_address(dest), dest)

    async def forward(self, port: int, host: str = "127.0.0.1") -> Forwarder:
        """STREAM FORWARD: the router connects to host:port for every incoming stream and writes the
        caller's destination line first. Only loopback targets are allowed. On i2pd 2.45 a session that
        has forwarded does not go back to STREAM ACCEPT, even after the Forwarder is closed: use one or
        the other per session. The forwarded connections are not the session's to end: close them before
        the session (transport/linger.py, point 2)."""
        self._check_open()
        if not is_loopback(host):
            raise ValueError("SAM forwarding targets must be on loopback")
        reader, writer = await _connect_hello(self.sam)
        try:
            writer.write(command("STREAM", "FORWARD", ID=self.session_id, PORT=port, HOST=host, SILENT="false"))
            (await _read_reply(reader)).check("STREAM", "STATUS")
        except BaseException:
            writer.close()
            raise
        return Forwarder(writer)

    async def lookup(self, name: str) -> str:
        """NAMING LOOKUP on the session's own socket (i2pd 2.45 can crash on a session-less one)."""
        if any(c in name for c in ' "\n='):
            raise SAMError(f"invalid I2P name: {name!r}", "INVALID_KEY")
        reply = await self._control.request(command("NAMING", "LOOKUP", NAME=name), timeout=60.0)
        if (reply.topic, reply.kind) == ("NAMING", "REPLY") and reply.result not in (None, "OK"):
            raise SAMError(f"cannot resolve {name}: {reply.result}", reply.result or "KEY_NOT_FOUND")
        reply.check("NAMING", "REPLY")
        value = reply.values.get("VALUE")
        if not value:
            raise SAMProtocolError("NAMING REPLY without VALUE")
        try:
            b32_address(value)
        except ValueError as exc:
            raise SAMProtocolError(f"NAMING REPLY with an invalid destination: {exc}") from None
        return value

    async def close(self) -> None:
        """End the stream sockets still open (and CONNECT/ACCEPT sockets on their way to being one), give
        the router STREAMS_SETTLE after the last to see them go, then close the session: i2pd crashes on a
        stream that outlives its session (transport/linger.py). Streams a caller never closed are ended
        here too."""
        self._closing = True
        try:
            for stream in list(self._streams):
                stream.abort()
            for writer in list(self._pending):
                writer.transport.abort()
                self._last_stream_end = time.monotonic()
            while not self._control.closed.is_set():
                left = settle_left(self._last_stream_end, time.monotonic())
                if left <= 0:
                    break
                await asyncio.sleep(left)
        finally:
            await self._control.close()

    async def __aenter__(self) -> "StreamSession":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _DatagramEndpoint(asyncio.DatagramProtocol):
    """Receives what the router forwards to our UDP port, into a queue bounded in bytes."""

    def __init__(self, queue_bytes: int, router_host: str) -> None:
        self.queue: deque[bytes] = deque()
        self.queue_bytes = queue_bytes
        self.queued = 0
        self.router_host = router_host
        self.waiter: asyncio.Future[None] | None = None
        self.dropped = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr[0] != self.router_host:
            return  # only the router forwards to this port
        if self.queued + len(data) > self.queue_bytes:
            self.dropped += 1
            return
        self.queue.append(data)
        self.queued += len(data)
        if self.waiter and not self.waiter.done():
            self.waiter.set_result(None)

    def pop(self) -> bytes:
        data = self.queue.popleft()
        self.queued -= len(data)
        return data


class _Pacer:
    """Token buckets in bytes and in packets: the router's UDP receive buffer overflows on unpaced bursts
    (84-94 % of 1000 x 1200 B lost). Small datagrams hit the packet limit first, large ones the byte limit
    (measured loss-free here: 1200 B up to ~2000/s, 16-30 KB up to 4-8 MB/s on an idle machine).
    The default packet rate is 600/s, not the idle ceiling: i2pd spends ~0.65 ms of CPU on each signed
    datagram, so 1200/s keeps one core ~80 % busy, and when other work starves its SAM thread for ~100 ms
    its 208 KB UDP buffer overflows (seen in CI; 1200/s lost datagrams in 5 of 6 loaded runs, 600/s in 1
    of 9)."""

    def __init__(self, rate: float, burst: float, packet_rate: float, packet_burst: float = 40) -> None:
        now = time.monotonic()
        self.bytes = TokenBucket(rate, burst, now)
        self.packets = TokenBucket(packet_rate, packet_burst, now)

    def delay(self, size: int, now: float) -> float:
        return max(self.bytes.charge(size, now), self.packets.charge(1, now))


class DatagramSession(_Session):
    """STYLE=DATAGRAM (repliable, signed): datagrams through the router's UDP port, paced. RAW is not
    offered: nothing here needs an unsigned, senderless datagram, and sending RAW is an open i2pd crash
    report (PurpleI2P/i2pd#1386); our CI's session router died of SIGSEGV once during the RAW test."""

    def __init__(self, sam: SAMAddress, destination: Destination, session_id: str, control: _Control,
                 endpoint: _DatagramEndpoint, pacer: _Pacer) -> None:
        self.sam = sam
        self.destination = destination
        self.session_id = session_id
        self._control = control
        self._endpoint = endpoint
        self._pacer = pacer
        self._send_lock = asyncio.Lock()

    @property
    def dropped(self) -> int:
        """Datagrams dropped on arrival because the receive queue was full."""
        return self._endpoint.dropped

    @classmethod
    async def create(cls, sam: SAMAddress, destination: Destination, options: dict[str, str] | None = None,
                     session_id: str | None = None, *, rate: float = 4_000_000,
                     burst: float = 65536, packet_rate: float = 600, queue_bytes: int = 8 << 20,
                     timeout: float = SESSION_TIMEOUT) -> "DatagramSession":
        """Sends are paced to `rate` bytes/s and `packet_rate` datagrams/s (with `burst` bytes of slack);
        arrivals beyond `queue_bytes` unread are dropped and counted in `dropped`."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.bind(("127.0.0.1", 0))
        transport, endpoint = await loop.create_datagram_endpoint(
            lambda: _DatagramEndpoint(queue_bytes, socket.gethostbyname(sam.host)), sock=sock)
        port = sock.getsockname()[1]
        try:
            control, sid = await _create_session(sam, "DATAGRAM", destination, options or {}, session_id,
                                                 extra={"PORT": port, "HOST": "127.0.0.1"}, timeout=timeout)
        except BaseException:
            transport.close()
            raise
        return cls(sam, destination, sid, control, endpoint, _Pacer(rate, burst, packet_rate))

    def max_payload(self, dest_b64: str) -> int:
        """The largest payload to `dest_b64` that arrives intact (the router truncates bigger ones)."""
        return DATAGRAM_LIMIT - len(self._header(dest_b64)) - 16

    def _header(self, dest_b64: str) -> bytes:
        return f"3.0 {self.session_id} {dest_b64}\n".encode("ascii")

    async def send(self, dest_b64: str, payload: bytes) -> None:
        """Send one datagram to a full base64 destination, waiting as pacing requires."""
        if self._control.closed.is_set():
            raise self._control.error or SAMError("SAM session closed", "CLOSED")
        if is_b32(dest_b64):
            raise ValueError("datagrams need the full base64 destination; look the .b32 up first")
        limit = self.max_payload(dest_b64)
        if len(payload) > limit:
            raise ValueError(f"datagram payload of {len(payload)} bytes exceeds the {limit}-byte limit "
                             "(the router would truncate it)")
        packet = self._header(dest_b64) + payload
        async with self._send_lock:
            wait = self._pacer.delay(len(packet), time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)
            assert self._endpoint.transport is not None
            self._endpoint.transport.sendto(packet, self.sam.udp)

    async def recv(self) -> tuple[str, bytes]:
        """The next datagram: (sender's base64 destination, payload)."""
        ep = self._endpoint
        while True:
            while not ep.queue:
                if self._control.closed.is_set():
                    raise self._control.error or SAMError("SAM session closed", "CLOSED")
                ep.waiter = asyncio.get_running_loop().create_future()
                closed = asyncio.ensure_future(self._control.closed.wait())
                try:
                    await asyncio.wait({ep.waiter, closed}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    closed.cancel()
            packet = ep.pop()
            try:
                return split_forwarded_datagram(packet)
            except SAMError as exc:
                log.warning("dropping a malformed forwarded datagram: %s", exc)

    async def close(self) -> None:
        await self._control.close()
        if self._endpoint.transport:
            self._endpoint.transport.close()

    async def __aenter__(self) -> "DatagramSession":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
