"""The Client: one I2P identity, one SAM session, one engine, and the trackers its torrents name.

Everything a user does goes through here (the CLI, the daemon, the examples). Peers arrive three ways and
all end up as ByteStreams handed to the engine:
- dialled by .b32 over a plain SAM stream (magnet x.pe, classic HTTP trackers): the wire i2psnark,
  BiglyBT and libtorrent-based clients speak;
- WebRTC data channels set up through a WebSocket tracker's offers and answers (the WebTorrent way);
- accepted on our session: a classic handshake goes to the engine, an RTC signaling stream to the RTC
  endpoint (it tells them apart by the first bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from i2ptorrent.private_files import private_dir, write_private
from i2ptorrent.engine import Engine, Metainfo, Torrent, TorrentStatus, as_metainfo, create_torrent
from i2ptorrent.tracker.client import (
    AnswerReceived,
    OfferExpired,
    OfferReceived,
    Opener,
    TrackerError,
    TrackerFailure,
    WebSocketTrackerClient,
    http_announce,
)
from i2ptorrent.tracker.urls import TrackerURLError, parse_tracker_url, tracker_opener
from i2ptorrent.transport.router import NETWORK_OPTIONS
from i2ptorrent.transport.rtc import RTCError
from i2ptorrent.transport.sam import (
    DatagramSession,
    SAMAddress,
    SAMError,
    StreamSession,
    load_or_create_destination,
)
from i2ptorrent.transport.sam_protocol import is_b32
from i2ptorrent.transport.session_keeper import KeptStreamSession
from i2ptorrent.transport.sdp import CARRIER_DATAGRAM, CARRIER_STREAM, SdpError
from i2ptorrent.transport.signaling import RTCConfig, RTCEndpoint
from i2ptorrent.transport.stream import ByteStream, PrefixedStream

log = logging.getLogger(__name__)

MAX_PENDING_OFFERS = 200
HUNGRY_REANNOUNCE = 15.0


class ClientError(Exception):
    """A request the client cannot carry out; the message is meant for the user."""


@dataclass
class ClientConfig:
    data_dir: Path
    sam: SAMAddress = field(default_factory=SAMAddress)
    session_options: dict[str, str] = field(default_factory=lambda: dict(NETWORK_OPTIONS))
    max_peers: int = 50
    download_rate: int = 0
    """Engine-wide download limit in bytes/s over all torrents and peers; 0 = unlimited."""
    upload_rate: int = 0
    """Engine-wide upload limit in bytes/s; 0 = unlimited."""
    connect_timeout: float = 75.0
    """How long a SAM stream connect may take (i2psnark uses 75 s on the real network)."""
    webrtc: bool = True
    """Answer and make WebRTC offers through WebSocket trackers."""
    rtc_carriers: tuple[str, ...] = (CARRIER_STREAM,)
    """How our WebRTC packets travel, preferred first. sam-stream is the default: faster and authenticated
    by the router (bench/rtc.py). Adding sam-datagram costs a second destination (i2pd 2.45 cannot put
    datagrams on the stream session's destination); it is only the carrier, our identity stays the same."""
    invite: str | None = None
    """An invite token for private trackers."""
    allow_loopback_trackers: bool = False
    """Tests and the demo may run a tracker on 127.0.0.1; a real client only talks to .i2p hosts."""


class Client:
    """A running i2ptorrent node. `async with Client(config) as c: t = await c.add(magnet, Path('dl'))`."""

    def __init__(self, config: ClientConfig, session: StreamSession | None = None) -> None:
        """`session`: an existing SAM session to use (and leave open) instead of our persistent one."""
        self.config = config
        self.session: StreamSession | KeptStreamSession | None = session
        self._own_session = session is None
        self.engine: Engine | None = None
        self.rtc: RTCEndpoint | None = None
        self._datagrams: DatagramSession | None = None
        self._ws: dict[str, WebSocketTrackerClient] = {}
        self._offers: dict[bytes, tuple[bytes, object]] = {}  # offer_id -> (info_hash, Offer)
        self._tasks: set[asyncio.Task[None]] = set()
        self._tracker_tasks: dict[bytes, list[asyncio.Task[None]]] = {}
        self.tracker_errors: dict[bytes, str] = {}
        self.trackers: dict[bytes, dict[str, str | None]] = {}
        """Per torrent, per tracker URL: None while no answer came yet, "" after a good one, else why the
        last announce failed. What `status` shows when peers stay away."""
        self._hungry: dict[bytes, list[str]] = {}  # info_hash -> WebSocket tracker URLs to re-offer to

    # ---- lifecycle ------------------------------------------------------------------------------

    @property
    def b32(self) -> str:
        if self.session is None:
            raise ClientError("client not started")
        return self.session.b32

    async def start(self) -> "Client":
        cfg = self.config
        private_dir(cfg.data_dir)
        if self.session is None:
            key = cfg.data_dir / "keys" / "destination.key"
            known = key.exists()  # keys perhaps in use on this router moments ago: check we are reachable
            destination = await load_or_create_destination(key, cfg.sam)
            kept = await KeptStreamSession.create(cfg.sam, destination, cfg.session_options, what="client",
                                                  probe_first=known)
            kept.keeper.on_replaced(lambda _session: self._session_replaced())
            self.session = kept
        try:
            self.engine = Engine(cfg.data_dir, dial=self._dial, own_addresses=(self.session.b32,),
                                 max_peers=cfg.max_peers, download_rate=cfg.download_rate,
                                 upload_rate=cfg.upload_rate)
            self.engine.warnings = self.warning
            await self.engine.start()
            datagrams = None
            if CARRIER_DATAGRAM in cfg.rtc_carriers:
                carrier_dest = await load_or_create_destination(cfg.data_dir / "keys" / "datagram.key", cfg.sam)
                datagrams = self._datagrams = await DatagramSession.create(cfg.sam, carrier_dest,
                                                                           cfg.session_options)
            self.rtc = RTCEndpoint(self.session, datagrams, config=RTCConfig(carriers=cfg.rtc_carriers))
            session = self.session
            self._spawn(self.rtc.serve(session.accept, self._incoming_classic, lambda: session.closed))
            self._spawn(self._rtc_accept_loop())
        except BaseException:
            await self.close()
            raise
        log.info("i2ptorrent node %s is up", self.session.b32)
        return self

    async def close(self) -> None:
        for ws in list(self._ws.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 10)
        self._ws.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self.rtc is not None:
            await self.rtc.close()
        if self.engine is not None:
            await self.engine.close()
        if self._datagrams is not None:
            await self._datagrams.close()
        if self.session is not None and self._own_session:
            await self.session.close()

    async def __aenter__(self) -> "Client":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _spawn(self, coro: object) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def router_status(self) -> str | None:
        """"I2P router lost, reconnecting ..." while our session is away, else None."""
        return self.session.status if isinstance(self.session, KeptStreamSession) else None

    def _session_replaced(self) -> None:
        """Our session is back: dial every torrent's peers now, not after the backoff the outage built."""
        if self.engine is not None:
            for t in self.engine.torrents:
                t.retry_dials()

    def warning(self, info_hash: bytes) -> str | None:
        """What keeps a torrent from peers, for its status line: the router, or its trackers."""
        lost = self.router_status
        if lost:
            return lost
        states = dict(self.trackers.get(info_hash, {}))
        for url in states:
            ws = self._ws.get(url)
            if ws is not None:
                states[url] = states[url] or ws.last_error or ("" if ws.connected.is_set() else None)
        failed = {url: why for url, why in states.items() if why}
        if not failed:
            waiting = [url for url, why in states.items() if why is None]
            return f"waiting for {len(waiting)} tracker(s)" if waiting and len(waiting) == len(states) else None
        t = self.engine.get(info_hash) if self.engine is not None else None
        url, why = next(iter(failed.items()))
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        if len(failed) == len(states) and t is not None and not t.peer_sources_left:
            return f"no peer source left: tracker {url} failed: {why}{more}"
        return f"tracker {url} failed: {why}{more}"

    def _tracker_result(self, info_hash: bytes, url: str, error: str | None) -> None:
        states = self.trackers.setdefault(info_hash, {})
        states[url] = error or ""
        if error:
            self.tracker_errors[info_hash] = f"{url}: {error}"
        elif not any(states.values()):
            self.tracker_errors.pop(info_hash, None)

    def _engine(self) -> Engine:
        if self.engine is None:
            raise ClientError("client not started")
        return self.engine

    # ---- torrents -------------------------------------------------------------------------------

    async def add(self, source: Metainfo | str | bytes | os.PathLike[str], save_path: Path,
                  selected_files: Iterable[int | str] | None = None) -> Torrent:
        """Add a magnet, .torrent (path or bytes) or Metainfo; it downloads (or seeds) from now on."""
        engine = self._engine()
        t = await engine.add(source, Path(save_path), selected_files=selected_files)
        meta = t.metainfo
        if meta.peers:
            t.add_candidates(meta.peers)
        self._announce(t, meta.trackers)
        return t

    async def seed(self, path: Path, trackers: Iterable[str] = (), piece_size: int | None = None) -> Torrent:
        """Make a torrent of a file or directory and seed it; its .torrent is kept in the data dir."""
        path = Path(path).resolve()
        if not path.exists():
            raise ClientError(f"{path}: no such file or directory")
        trackers = list(trackers)
        for url in trackers:
            try:
                parse_tracker_url(url, self.config.allow_loopback_trackers)
            except TrackerURLError as exc:
                raise ClientError(str(exc)) from None
        data = await asyncio.to_thread(create_torrent, path, trackers=trackers, piece_size=piece_size)
        meta = as_metainfo(data)
        write_private(self.config.data_dir / "torrents" / f"{meta.info_hash.hex()}.torrent", data)
        return await self.add(meta, path.parent)

    def magnet(self, t: Torrent) -> str:
        """The torrent's magnet with its trackers and our own .b32 as a peer (x.pe): no tracker needed."""
        return t.magnet(peers=[self.b32])

    def status(self) -> list[TorrentStatus]:
        return [t.status() for t in self._engine().torrents]

    async def remove(self, t: Torrent) -> None:
        self._hungry.pop(t.info_hash, None)
        self.trackers.pop(t.info_hash, None)
        for task in self._tracker_tasks.pop(t.info_hash, []):
            task.cancel()
        for ws in self._ws.values():
            with contextlib.suppress(Exception):
                await ws.remove(t.info_hash)
        await self._engine().remove(t)

    # ---- what the browser bridge uses (bridge.Node) -----------------------------------------------

    @property
    def peer_id(self) -> bytes:
        """Our BitTorrent peer id, the same towards every peer."""
        return self._engine().peer_id

    def get(self, info_hash: bytes) -> Torrent | None:
        """The torrent with this info-hash, if we have it."""
        return self._engine().get(info_hash)

    async def add_peer(self, t: Torrent, stream: ByteStream) -> bool:
        """Hand the torrent a peer that reached us some other way (a browser's data channel);
        False if the torrent refused it (ban, limits)."""
        return await self._engine().add_peer(t, stream)

    # ---- peers ----------------------------------------------------------------------------------

    async def _dial(self, b32: str) -> ByteStream:
        assert self.session is not None
        return await self.session.connect(b32, timeout=self.config.connect_timeout)

    async def _incoming_classic(self, stream: ByteStream, head: bytes) -> None:
        try:
            await self._engine().handle_incoming(PrefixedStream(stream, head))
        except Exception as exc:  # one bad peer must never end the accept loop
            log.info("incoming peer %s dropped: %s", stream.remote, exc)
            await stream.close()

    async def _rtc_accept_loop(self) -> None:
        assert self.rtc is not None
        while True:
            stream = await self.rtc.accept()
            self._spawn(self._incoming_classic(stream, b""))

    async def connect_peer(self, t: Torrent, b32: str, webrtc: bool = False) -> None:
        """Connect to a peer we know by address: a SAM stream, or a WebRTC channel signaled over one."""
        if not is_b32(b32):
            raise ClientError(f"not a .b32.i2p address: {b32!r}")
        stream: ByteStream
        if webrtc:
            assert self.rtc is not None
            stream = await self.rtc.connect(b32)
        else:
            stream = await self._dial(b32)
        await self._engine().add_peer(t, stream)

    # ---- trackers -------------------------------------------------------------------------------

    def _announce(self, t: Torrent, trackers: Iterable[str]) -> None:
        assert self.session is not None
        tasks = self._tracker_tasks.setdefault(t.info_hash, [])
        for url in trackers:
            try:
                scheme = parse_tracker_url(url, self.config.allow_loopback_trackers).scheme
                opener = tracker_opener(self.session, url, self.config.allow_loopback_trackers,
                                        self.config.connect_timeout)
            except TrackerURLError as exc:
                self._tracker_result(t.info_hash, url, str(exc))
                log.warning("%s", exc)
                continue
            if scheme in ("ws", "wss"):
                if not self.config.webrtc:
                    continue
                self.trackers.setdefault(t.info_hash, {}).setdefault(url, None)
                ws = self._ws.get(url)
                if ws is None:
                    ws = self._ws[url] = WebSocketTrackerClient(
                        url, opener, self._engine().peer_id, offer_factory=self._make_offers,
                        invite=self.config.invite)
                    ws.start()
                    self._spawn(self._ws_events(ws))
                ws.add(t.info_hash, left=self._left(t))
                urls = self._hungry.setdefault(t.info_hash, [])
                if url not in urls:
                    urls.append(url)
                    if len(urls) == 1:
                        tasks.append(self._spawn(self._ws_hungry_loop(t)))
            else:  # http
                self.trackers.setdefault(t.info_hash, {}).setdefault(url, None)
                tasks.append(self._spawn(self._http_loop(t, url, opener)))

    @staticmethod
    def _left(t: Torrent) -> int | None:
        st = t.status()
        if not st.total_size:
            return None
        return max(0, st.total_size - st.downloaded) if st.progress < 1 else 0

    async def _http_loop(self, t: Torrent, url: str, opener: Opener) -> None:
        """Announce every interval; while we still need data and the tracker knew no other peer, sooner
        (15 s, doubling): a leecher that announced just before its seeder must not wait 10 minutes."""
        event: str | None = "started"
        hungry = HUNGRY_REANNOUNCE
        while True:
            st = t.status()
            try:
                result = await http_announce(opener, url, t.info_hash, self._engine().peer_id, event=event,
                                             left=self._left(t) or 0, uploaded=st.uploaded,
                                             downloaded=st.downloaded, invite=self.config.invite)
                event = None
                self._tracker_result(t.info_hash, url, None)
                others = [p for p in result.peers if is_b32(p) and p != self.b32]
                t.add_candidates(others)
                delay = float(max(60, min(result.interval, 3600)))
                if not others and self._left(t) != 0:
                    delay, hungry = min(delay, hungry), hungry * 2
                else:
                    hungry = HUNGRY_REANNOUNCE
            except (TrackerError, SAMError, OSError, asyncio.TimeoutError) as exc:
                self._tracker_result(t.info_hash, url, str(exc) or exc.__class__.__name__)
                log.info("announce to %s failed: %s", url, exc)
                delay = 60.0
            await asyncio.sleep(delay)

    async def _ws_hungry_loop(self, t: Torrent) -> None:
        """While a torrent needs data and has no peer, offer again every 30 s (the reference client
        would wait the tracker's interval, 2 min, after an offer whose connection failed)."""
        while True:
            await asyncio.sleep(HUNGRY_REANNOUNCE * 2)
            if self._left(t) == 0:
                return
            if t.status().peers:
                continue
            for url in self._hungry.get(t.info_hash, []):
                ws = self._ws.get(url)
                if ws is not None and ws.connected.is_set():
                    with contextlib.suppress(Exception):
                        await ws.announce_now(t.info_hash)

    async def _make_offers(self, info_hash: bytes, count: int) -> list[tuple[bytes, str]]:
        if self.rtc is None or self._engine().get(info_hash) is None:
            return []
        made = []
        for _ in range(count):
            if len(self._offers) >= MAX_PENDING_OFFERS:
                break
            try:
                offer = self.rtc.make_offer()
            except RTCError:
                break
            offer_id = os.urandom(20)
            self._offers[offer_id] = (info_hash, offer)
            made.append((offer_id, offer.signal["sdp"]))
        return made

    async def _ws_events(self, ws: WebSocketTrackerClient) -> None:
        while True:
            ev = await ws.events.get()
            if isinstance(ev, OfferReceived):
                self._spawn(self._answer_offer(ws, ev))
            elif isinstance(ev, AnswerReceived):
                self._spawn(self._finish_offer(ev))
            elif isinstance(ev, OfferExpired):
                entry = self._offers.pop(ev.offer_id, None)
                if entry is not None:
                    entry[1].cancel()  # type: ignore[attr-defined]
            elif isinstance(ev, TrackerFailure):
                if ev.info_hash is not None:
                    self._tracker_result(ev.info_hash, ws.url, ev.reason)
                log.warning("tracker %s: %s", ws.url, ev.reason)

    async def _answer_offer(self, ws: WebSocketTrackerClient, ev: OfferReceived) -> None:
        assert self.rtc is not None
        t = self._engine().get(ev.info_hash)
        if t is None:
            return
        try:
            answer, pending = self.rtc.accept_offer({"type": "offer", "sdp": ev.sdp})
        except SdpError as exc:
            log.info("refused an offer from %s: %s", ev.remote_b32 or "?", exc)
            return
        try:
            await ws.answer(ev.info_hash, ev.peer_id, ev.offer_id, answer["sdp"])
            stream = await pending
        except (RTCError, SdpError, SAMError, OSError, asyncio.TimeoutError) as exc:
            log.info("WebRTC to %s failed: %s", ev.remote_b32 or "?", exc)
            with contextlib.suppress(BaseException):
                pending.close()  # type: ignore[attr-defined]
            return
        await self._engine().add_peer(t, stream)

    async def _finish_offer(self, ev: AnswerReceived) -> None:
        entry = self._offers.pop(ev.offer_id, None)
        if entry is None:
            return
        info_hash, offer = entry
        t = self._engine().get(info_hash)
        if t is None:
            offer.cancel()  # type: ignore[attr-defined]
            return
        try:
            stream = await offer.accept_answer({"type": "answer", "sdp": ev.sdp})  # type: ignore[attr-defined]
        except (RTCError, SdpError, SAMError, OSError, asyncio.TimeoutError) as exc:
            log.info("WebRTC answer from %s failed: %s", ev.remote_b32 or "?", exc)
            return
        await self._engine().add_peer(t, stream)
