"""The tracker eepsite on the real i2pd router: peers find each other only through it.

One private tracker at a persistent destination (started with `start_tracker`) and three peers on
their own SAM sessions: a member on the allowlist, a guest holding an invite, and a stranger.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from i2ptorrent.tracker.access import AccessList
from i2ptorrent.tracker.client import (AnnounceResult, AnswerReceived, OfferReceived, TrackerError,
                                       Opener, TrackerFailure, WebSocketTrackerClient, http_announce)
from i2ptorrent.tracker.eepsite import TrackerPaths, start_tracker
from i2ptorrent.tracker.urls import sam_opener
from i2ptorrent.transport.sam import Destination
from i2ptorrent.transport.stream import ByteStream
from test_tracker_server import _drain, fake_offers
from test_tracker_server import next_event as _next_event

pytestmark = pytest.mark.timeout(400)
next_event = functools.partial(_next_event, timeout=180.0)  # I2P is slow to build tunnels


class _CloseNeverSeen:
    """A real SAM stream whose end is never reported: reads after the peer's close wait for ever."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream

    @property
    def remote(self) -> str:
        return self._stream.remote

    async def read(self, n: int = 65536) -> bytes:
        data = await self._stream.read(n)
        if not data:
            await asyncio.Event().wait()
        return data

    async def write(self, data: bytes) -> None:
        await self._stream.write(data)

    async def close(self) -> None:
        await self._stream.close()


def _close_never_seen(opener: Opener) -> Opener:
    async def open_() -> ByteStream:
        return _CloseNeverSeen(await opener())
    return open_


async def test_private_tracker_eepsite_over_sam(router, sam_pool, tmp_path) -> None:
    paths = TrackerPaths(tmp_path / "tracker")
    # The tracker's session and the peers' sessions become ready together (~20 s on i2pd 2.45).
    site, (member, guest, stranger) = await asyncio.gather(
        start_tracker(paths.data_dir, router.sam, router.session_options, private=True),
        sam_pool.streams("tracker-member", "tracker-guest", "tracker-stranger"))
    clients: list[WebSocketTrackerClient] = []
    try:
        # A persistent identity: the key file is 0600 and is the eepsite's destination.
        assert stat.S_IMODE(paths.key.stat().st_mode) == 0o600
        assert Destination.load(paths.key).b32 == site.b32
        acl = site.server.access
        assert acl is not None
        acl.allow(member.b32)
        token = acl.invite()
        assert AccessList.load(paths.access).allowed == {member.b32}

        def ws_client(session, invite=None) -> WebSocketTrackerClient:
            c = WebSocketTrackerClient(site.announce_url, sam_opener(session, site.announce_url),
                                       os.urandom(20), offer_factory=fake_offers, invite=invite)
            clients.append(c)
            c.start()
            return c

        info_hash = os.urandom(20)
        a = ws_client(member)
        a.add(info_hash, left=0)
        joined = await next_event(a, AnnounceResult)
        assert (joined.complete, joined.incomplete) == (1, 0)

        # The stranger is refused, learns no counts, and its offers reach nobody.
        c = ws_client(stranger)
        c.add(info_hash, left=10)
        refused = await next_event(c, TrackerFailure)
        assert "private tracker" in refused.reason
        with pytest.raises(TrackerError, match="private tracker"):
            await http_announce(sam_opener(stranger, site.http_announce_url), site.http_announce_url,
                                info_hash, os.urandom(20), left=10)

        # The guest's invite admits it; then its offer reaches the member, who answers.
        b = ws_client(guest, invite=token)
        b.add(info_hash, left=10)
        result = await next_event(b, AnnounceResult)
        assert (result.complete, result.incomplete) == (1, 1)
        assert guest.b32 in AccessList.load(paths.access).allowed
        await b.announce_now(info_hash)
        offer = await next_event(a, OfferReceived)
        assert offer.remote_b32 == guest.b32  # the address SAM reported for the guest's stream
        assert offer.remote_destination == guest.destination.public
        await a.answer(offer.info_hash, offer.peer_id, offer.offer_id, "v=0\r\nanswer\r\n")
        answer = await next_event(b, AnswerReceived)
        assert answer.offer_id == offer.offer_id and answer.remote_b32 == member.b32
        assert all(not isinstance(e, (OfferReceived, AnswerReceived)) for e in _drain(c))

        # Classic I2P announces over SAM: compact peer lists are the other side's destination hash.
        http_hash = os.urandom(20)
        first = await http_announce(sam_opener(member, site.http_announce_url), site.http_announce_url,
                                    http_hash, os.urandom(20), event="started", left=0,
                                    uploaded=0, downloaded=0)
        assert first.peers == []
        second = await http_announce(sam_opener(guest, site.http_announce_url), site.http_announce_url,
                                     http_hash, os.urandom(20), event="started", left=5)
        assert second.peers == [member.b32] and (second.complete, second.incomplete) == (1, 1)

        # The reply ends at its Content-Length: an announce does not wait for the stream's close,
        # which on I2P can come 20 s or more after the last byte (issue #10). Here it never comes.
        third = await asyncio.wait_for(
            http_announce(_close_never_seen(sam_opener(guest, site.http_announce_url)), site.http_announce_url,
                          http_hash, os.urandom(20), event="started", left=5), 60)
        assert member.b32 in third.peers
    finally:
        for client in clients:
            await client.close()
        await site.close()



async def cli_invite(tracker_dir: Path, ttl: str) -> str:
    """`i2ptorrent tracker invite --ttl TTL`, the command an operator runs while the tracker runs."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "i2ptorrent", "tracker", "invite", "--ttl", ttl, "--tracker-dir", str(tracker_dir),
        "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)["invite"]


async def test_cli_invites_expire_on_a_running_tracker(router, sam_pool, tmp_path) -> None:
    """`tracker invite --ttl 2s` made in another process: spent within 2 s it admits one peer, once;
    presented after 3 s it is refused. (The running tracker's own clock is monotonic.)"""
    paths = TrackerPaths(tmp_path / "tracker")
    site, (prompt, late) = await asyncio.gather(
        start_tracker(paths.data_dir, router.sam, router.session_options, private=True),
        sam_pool.streams("invite-prompt", "invite-late"))
    clients: list[WebSocketTrackerClient] = []
    try:
        info_hash = os.urandom(20)

        async def verdict(client: WebSocketTrackerClient) -> AnnounceResult | TrackerFailure:
            return await next_event(client, (AnnounceResult, TrackerFailure))

        async def refused_client(session) -> WebSocketTrackerClient:
            """Connected and refused once: the connection is open, so an invite is tested in one round trip."""
            c = WebSocketTrackerClient(site.announce_url, sam_opener(session, site.announce_url),
                                       os.urandom(20), offer_factory=fake_offers)
            clients.append(c)
            c.start()
            c.add(info_hash, left=10)
            refused = await verdict(c)
            assert isinstance(refused, TrackerFailure) and "private tracker" in refused.reason
            return c

        a, b = await asyncio.gather(refused_client(prompt), refused_client(late))
        expiring = await cli_invite(paths.data_dir, "2s")
        expiring_made_at = time.monotonic()

        a.invite = await cli_invite(paths.data_dir, "2s")
        await a.announce_now(info_hash)
        admitted = await verdict(a)
        assert isinstance(admitted, AnnounceResult), f"refused {time.monotonic() - expiring_made_at:.1f} s after the invite"
        assert admitted.incomplete == 1 and prompt.b32 in AccessList.load(paths.access).allowed

        b.invite = a.invite  # spent: it admits nobody else
        await b.announce_now(info_hash)
        spent = await verdict(b)
        assert isinstance(spent, TrackerFailure) and "private tracker" in spent.reason

        await asyncio.sleep(max(0.0, expiring_made_at + 3.0 - time.monotonic()))  # wall-clock time must pass
        b.invite = expiring
        await b.announce_now(info_hash)
        expired = await verdict(b)
        assert isinstance(expired, TrackerFailure), "an invite made with --ttl 2s admitted a peer after 3 s"
        assert "private tracker" in expired.reason
        assert late.b32 not in AccessList.load(paths.access).allowed
        assert AccessList.load(paths.access).invites == {}  # the expired invite was used up, not kept
    finally:
        for client in clients:
            await client.close()
        await site.close()
