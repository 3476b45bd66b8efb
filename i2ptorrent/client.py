"""The Client: one I2P identity, one SAM session, one engine, and the wiring between them.

Everything a user does goes through here (the CLI, the daemon, the bridge, the examples). Announcing to
trackers, and the WebRTC offers and answers that come with WebSocket announces, live in announce.py;
every background task runs under a Supervisor, so none fails silently. Peers arrive three ways and all
end up as ByteStreams handed to the engine:
- dialled by .b32 over a plain SAM stream (magnet x.pe, classic HTTP trackers): the wire i2psnark,
  BiglyBT and libtorrent-based clients speak;
- WebRTC data channels set up through a WebSocket tracker's offers and answers (the WebTorrent way);
- accepted on our session: a classic handshake goes to the engine, an RTC signaling stream to the RTC
  endpoint (it tells them apart by the first bytes).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from i2ptorrent.announce import Announcer
from i2ptorrent.private_files import private_dir, write_private
from i2ptorrent.engine import Engine, Metainfo, Torrent, TorrentStatus, as_metainfo, create_torrent
from i2ptorrent.supervisor import Supervisor
from i2ptorrent.tracker.urls import TrackerURLError, parse_tracker_url
from i2ptorrent.transport.router import NETWORK_OPTIONS
from i2ptorrent.transport.sam import SAMAddress, StreamSession, load_or_create_destination
from i2ptorrent.transport.sam_protocol import is_b32
from i2ptorrent.transport.session_keeper import KeptDatagramSession, KeptStreamSession
from i2ptorrent.transport.sdp import CARRIER_DATAGRAM, CARRIER_STREAM, CARRIER_STRIPE
from i2ptorrent.transport.signaling import RTCConfig, RTCEndpoint
from i2ptorrent.transport.stream import ByteStream, PrefixedStream

log = logging.getLogger(__name__)



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
    rtc_carriers: tuple[str, ...] = (CARRIER_STRIPE, CARRIER_STREAM)
    """How our WebRTC packets travel, preferred first. sam-stripe (several SAM streams to the peer, packets
    put back in order) first: one stream is capped by its streaming window over the tunnel round trip, and
    at 3 hops, 50 ms per link the striped carrier moved 2-3x a single one (bench/testnet.py). sam-stream
    for peers that do not stripe. Both are authenticated by the router. Adding sam-datagram costs a second
    destination (i2pd 2.45 cannot put datagrams on the stream session's destination); it is only the
    carrier, our identity stays the same."""
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
        self._datagrams: KeptDatagramSession | None = None
        self._announcer: Announcer | None = None
        self._tasks = Supervisor(log)

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
                datagrams = self._datagrams = await KeptDatagramSession.create(cfg.sam, carrier_dest,
                                                                               cfg.session_options)
            self.rtc = RTCEndpoint(self.session, datagrams, config=RTCConfig(carriers=cfg.rtc_carriers))
            self._announcer = Announcer(self.session, self.engine, self.rtc, self._tasks, cfg)
            session = self.session
            self._tasks.spawn(self.rtc.serve(session.accept, self._incoming_classic, lambda: session.closed),
                              "SAM accept loop")
            self._tasks.spawn(self._rtc_accept_loop(), "WebRTC accept loop")
        except BaseException:
            await self.close()
            raise
        log.info("i2ptorrent node %s is up", self.session.b32)
        return self

    async def close(self) -> None:
        if self._announcer is not None:
            await self._announcer.close()
        await self._tasks.close()
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

    @property
    def router_status(self) -> str | None:
        """"I2P router lost, reconnecting ..." while our session is away, else None."""
        stream = self.session.status if isinstance(self.session, KeptStreamSession) else None
        return stream or (self._datagrams.status if self._datagrams is not None else None)

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
        return self._announcer.warning(info_hash) if self._announcer is not None else None

    def _engine(self) -> Engine:
        if self.engine is None:
            raise ClientError("client not started")
        return self.engine

    def _trackers(self) -> Announcer:
        if self._announcer is None:
            raise ClientError("client not started")
        return self._announcer

    # ---- torrents -------------------------------------------------------------------------------

    async def add(self, source: Metainfo | str | bytes | os.PathLike[str], save_path: Path,
                  selected_files: Iterable[int | str] | None = None) -> Torrent:
        """Add a magnet, .torrent (path or bytes) or Metainfo; it downloads (or seeds) from now on."""
        engine = self._engine()
        t = await engine.add(source, Path(save_path), selected_files=selected_files)
        meta = t.metainfo
        if meta.peers:
            t.add_candidates(meta.peers)
        self._trackers().add(t, meta.trackers)
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

    @property
    def trackers(self) -> dict[bytes, dict[str, str | None]]:
        """Per torrent, per tracker URL: None while no answer came yet, "" after a good one, else why the
        last announce failed."""
        return self._announcer.trackers if self._announcer is not None else {}

    @property
    def tracker_errors(self) -> dict[bytes, str]:
        """The last tracker problem per torrent (info hash), for status; a failed announce loop too."""
        return self._announcer.errors if self._announcer is not None else {}

    @property
    def failures(self) -> list[str]:
        """Background tasks that failed (newest last), for status: none of them fails silently."""
        return list(self._tasks.failures)

    async def remove(self, t: Torrent) -> None:
        await self._trackers().remove(t)
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
            self._tasks.spawn(self._incoming_classic(stream, b""), f"WebRTC peer {stream.remote}")

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
