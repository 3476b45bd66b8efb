"""Telling trackers about our torrents, and the WebRTC offers and answers that travel with WebSocket announces.

The Client owns one Announcer. Per torrent it runs a classic HTTP announce loop per http tracker and
shares one WebSocketTrackerClient per ws tracker URL across torrents (as the reference client does).
Policy lives here: announce sooner while hungry, offer again while a torrent has no peer, and tell every
tracker `completed` when a download finishes. Offers are the RTC endpoint's table (signaling.Offer);
nothing here keeps another copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Protocol

from i2ptorrent.engine import Engine, Torrent
from i2ptorrent.supervisor import Supervisor, wait_at_most
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
from i2ptorrent.transport.rtc import RTCError
from i2ptorrent.transport.sam import SAMError, StreamSession
from i2ptorrent.transport.sam_protocol import is_b32
from i2ptorrent.transport.sdp import SdpError
from i2ptorrent.transport.signaling import RTCEndpoint

log = logging.getLogger(__name__)

HUNGRY_REANNOUNCE = 15.0
FAILED_REANNOUNCE_MAX = 60.0
UNKNOWN_LEFT = 16384
"""`left` in a classic announce before a magnet's metadata is known: not 0, which means a seeder."""
RTC_SETUP_ERRORS = (RTCError, SdpError, SAMError, OSError, asyncio.TimeoutError)


class AnnounceSettings(Protocol):
    """What the announcer reads of the ClientConfig, at each use: a caller may set `invite` after start."""

    connect_timeout: float
    webrtc: bool
    invite: str | None
    allow_loopback_trackers: bool


def left_of(t: Torrent) -> int | None:
    """Bytes still wanted; None while a magnet's size is unknown."""
    st = t.status()
    if not st.total_size:
        return None
    return max(0, st.total_size - st.downloaded) if st.progress < 1 else 0


class Announcer:
    """Announces our torrents and turns WebSocket trackers' offers and answers into engine peers."""

    def __init__(self, session: StreamSession, engine: Engine, rtc: RTCEndpoint | None, tasks: Supervisor,
                 settings: AnnounceSettings) -> None:
        self._session = session
        self._engine = engine
        self._rtc = rtc
        self._tasks = tasks
        self._settings = settings
        self._ws: dict[str, WebSocketTrackerClient] = {}
        self._torrent_tasks: dict[bytes, list[asyncio.Task[None]]] = {}
        self._ws_urls: dict[bytes, list[str]] = {}  # info_hash -> its WebSocket trackers
        self.errors: dict[bytes, str] = {}
        """The last tracker problem per torrent (cleared when every tracker answered well)."""
        self.trackers: dict[bytes, dict[str, str | None]] = {}
        """Per torrent, per tracker URL: None while no answer came yet, "" after a good one, else why the
        last announce failed. What `status` shows when peers stay away."""

    def _result(self, info_hash: bytes, url: str, error: str | None) -> None:
        states = self.trackers.setdefault(info_hash, {})
        states[url] = error or ""
        if error:
            self.errors[info_hash] = f"{url}: {error}"
        elif not any(states.values()):
            self.errors.pop(info_hash, None)

    def warning(self, info_hash: bytes) -> str | None:
        """What keeps a torrent from peers as far as its trackers go, for its status line."""
        states = dict(self.trackers.get(info_hash, {}))
        for url in states:
            ws = self._ws.get(url)
            if ws is not None:
                states[url] = states[url] or ws.last_error or ("" if ws.connected.is_set() else None)
        failed = {url: why for url, why in states.items() if why}
        if not failed:
            waiting = [url for url, why in states.items() if why is None]
            return f"waiting for {len(waiting)} tracker(s)" if waiting and len(waiting) == len(states) else None
        t = self._engine.get(info_hash)
        url, why = next(iter(failed.items()))
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        if len(failed) == len(states) and t is not None and not t.peer_sources_left:
            return f"no peer source left: tracker {url} failed: {why}{more}"
        return f"tracker {url} failed: {why}{more}"

    def _spawn(self, t: Torrent, coro: object, name: str) -> None:
        def failed(message: str) -> None:
            self.errors[t.info_hash] = message
        task = self._tasks.spawn(coro, f"{name} {t.info_hash.hex()[:12]}", failed)  # type: ignore[arg-type]
        self._torrent_tasks.setdefault(t.info_hash, []).append(task)

    def add(self, t: Torrent, trackers: Iterable[str]) -> None:
        """Start announcing `t` to each tracker; unusable URLs are recorded in `errors`, not raised."""
        for url in trackers:
            try:
                websocket = parse_tracker_url(url, self._settings.allow_loopback_trackers).websocket
                opener = tracker_opener(self._session, url, self._settings.allow_loopback_trackers,
                                        self._settings.connect_timeout)
            except TrackerURLError as exc:
                self._result(t.info_hash, url, str(exc))
                log.warning("%s", exc)
                continue
            if not websocket:
                self.trackers.setdefault(t.info_hash, {}).setdefault(url, None)
                self._spawn(t, self._http_loop(t, url, opener), "http announce")
            elif self._settings.webrtc:
                self.trackers.setdefault(t.info_hash, {}).setdefault(url, None)
                self._add_ws(t, url, opener)

    def _add_ws(self, t: Torrent, url: str, opener: Opener) -> None:
        ws = self._ws.get(url)
        if ws is None:
            ws = self._ws[url] = WebSocketTrackerClient(url, opener, self._engine.peer_id,
                                                        offer_factory=self._make_offers,
                                                        invite=self._settings.invite)
            ws.start()
            self._tasks.spawn(self._ws_events(ws), f"tracker events {url}")
        ws.add(t.info_hash, left=left_of(t))
        urls = self._ws_urls.setdefault(t.info_hash, [])
        if url not in urls:
            urls.append(url)
            if len(urls) == 1:
                self._spawn(t, self._ws_hungry_loop(t), "webrtc re-offer")
                self._spawn(t, self._ws_completed(t), "webrtc completed")

    async def remove(self, t: Torrent) -> None:
        self._ws_urls.pop(t.info_hash, None)
        self.trackers.pop(t.info_hash, None)
        for task in self._torrent_tasks.pop(t.info_hash, []):
            task.cancel()
        for ws in self._ws.values():
            with contextlib.suppress(Exception):
                await ws.remove(t.info_hash)

    async def close(self) -> None:
        """Tell WebSocket trackers we stop (bounded); the Supervisor cancels the loops."""
        for ws in list(self._ws.values()):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await ws.close()
        self._ws.clear()

    # ---- classic HTTP ---------------------------------------------------------------------------

    async def _http_loop(self, t: Torrent, url: str, opener: Opener) -> None:
        """Announce every interval; while we still need data and the tracker knew no other peer, sooner
        (15 s, doubling): a leecher that announced just before its seeder must not wait 10 minutes.
        A failed announce is retried after 15 s, doubling to a minute (it was a flat minute)."""
        event: str | None = "started"
        hungry = retry = HUNGRY_REANNOUNCE
        was_done = left_of(t) == 0
        while True:
            st = t.status()
            left = left_of(t)
            if event is None and left == 0 and not was_done:
                event = "completed"
            try:
                # A magnet whose size is not known yet still wants data: left=0 would make it a seeder.
                result = await http_announce(opener, url, t.info_hash, self._engine.peer_id, event=event,
                                             left=UNKNOWN_LEFT if left is None else left,
                                             uploaded=st.uploaded, downloaded=st.downloaded,
                                             invite=self._settings.invite)
                was_done = was_done or left == 0
                event = None
                self._result(t.info_hash, url, None)
                others = [p for p in result.peers if is_b32(p) and p != self._session.b32]
                t.add_candidates(others)
                delay = float(max(60, min(result.interval, 3600)))
                if not others and left_of(t) != 0:
                    delay, hungry = min(delay, hungry), hungry * 2
                else:
                    hungry = HUNGRY_REANNOUNCE
            except (TrackerError, SAMError, OSError, asyncio.TimeoutError) as exc:
                self._result(t.info_hash, url, str(exc) or exc.__class__.__name__)
                log.info("announce to %s failed: %s", url, exc)
                # A fresh session often cannot reach the tracker yet: try again soon, then every minute.
                delay, retry = retry, min(retry * 2, FAILED_REANNOUNCE_MAX)
            else:
                retry = HUNGRY_REANNOUNCE
            if was_done or left_of(t) == 0:
                # done already (or its `completed` announce failed): the next announce waits `delay`
                await asyncio.sleep(delay)
            else:  # cut short when the download completes: the tracker hears `completed` at once
                await wait_at_most(t.wait_complete(), delay)

    # ---- WebSocket (WebTorrent) -----------------------------------------------------------------

    async def _ws_completed(self, t: Torrent) -> None:
        """When the download completes, every WebSocket tracker of the torrent hears `completed`."""
        if left_of(t) == 0:
            return
        await t.wait_complete()
        for url in self._ws_urls.get(t.info_hash, []):
            ws = self._ws.get(url)
            if ws is not None:
                ws.update_left(t.info_hash, 0)

    async def _ws_hungry_loop(self, t: Torrent) -> None:
        """While a torrent needs data and has no peer, offer again every 30 s (the reference client
        would wait the tracker's interval, 2 min, after an offer whose connection failed)."""
        while True:
            await asyncio.sleep(HUNGRY_REANNOUNCE * 2)
            if left_of(t) == 0:
                return
            if t.status().peers:
                continue
            for url in self._ws_urls.get(t.info_hash, []):
                ws = self._ws.get(url)
                if ws is not None and ws.connected.is_set():
                    with contextlib.suppress(Exception):
                        await ws.announce_now(t.info_hash)

    async def _make_offers(self, info_hash: bytes, count: int) -> list[tuple[bytes, str]]:
        if self._rtc is None or self._engine.get(info_hash) is None:
            return []
        made = []
        for _ in range(count):
            try:
                offer = self._rtc.make_offer(tag=info_hash)
            except RTCError:  # the endpoint's bound on pending offers
                break
            made.append((offer.offer_id, offer.signal["sdp"]))
        return made

    async def _ws_events(self, ws: WebSocketTrackerClient) -> None:
        while True:
            ev = await ws.events.get()
            if isinstance(ev, OfferReceived):
                self._tasks.spawn(self._answer_offer(ws, ev), f"answer offer from {ev.remote_b32 or '?'}")
            elif isinstance(ev, AnswerReceived):
                self._tasks.spawn(self._finish_offer(ev), f"answer from {ev.remote_b32 or '?'}")
            elif isinstance(ev, OfferExpired):
                offer = self._rtc.pending_offer(ev.offer_id) if self._rtc is not None else None
                if offer is not None:
                    offer.cancel()
            elif isinstance(ev, TrackerFailure):
                if ev.info_hash is not None:
                    self._result(ev.info_hash, ws.url, ev.reason)
                log.warning("tracker %s: %s", ws.url, ev.reason)

    async def _answer_offer(self, ws: WebSocketTrackerClient, ev: OfferReceived) -> None:
        t = self._engine.get(ev.info_hash)
        if t is None or self._rtc is None:
            return
        try:
            answer, pending = self._rtc.accept_offer({"type": "offer", "sdp": ev.sdp})
        except SdpError as exc:
            log.info("refused an offer from %s: %s", ev.remote_b32 or "?", exc)
            return
        try:
            await ws.answer(ev.info_hash, ev.peer_id, ev.offer_id, answer["sdp"])
            stream = await pending
        except RTC_SETUP_ERRORS as exc:
            log.info("WebRTC to %s failed: %s", ev.remote_b32 or "?", exc)
            with contextlib.suppress(BaseException):
                pending.close()  # type: ignore[attr-defined]
            return
        await self._engine.add_peer(t, stream)

    async def _finish_offer(self, ev: AnswerReceived) -> None:
        offer = self._rtc.pending_offer(ev.offer_id) if self._rtc is not None else None
        if offer is None or offer.tag != ev.info_hash:
            return  # expired, already answered, or not ours
        t = self._engine.get(ev.info_hash)
        if t is None:
            offer.cancel()
            return
        try:
            stream = await offer.accept_answer({"type": "answer", "sdp": ev.sdp})
        except RTC_SETUP_ERRORS as exc:
            log.info("WebRTC answer from %s failed: %s", ev.remote_b32 or "?", exc)
            return
        await self._engine.add_peer(t, stream)
