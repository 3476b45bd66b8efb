"""A daemon with its HTTP face, and a seeder, on the session's router: what the RPC, web and stream tests
drive. Both Clients use pooled SAM sessions (ready together once per test session)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2ptorrent.client import Client, ClientConfig
from i2ptorrent.config import Config
from i2ptorrent.daemon.registry import Registry
from i2ptorrent.daemon.server import Daemon, HttpOptions, http_face

SESSIONS = ("faces-seed", "faces-daemon")


@dataclass
class Lab:
    seeder: Client
    daemon: Daemon
    face: Any  # web.HttpFace
    root: Path

    @property
    def rpc_url(self) -> str:
        return self.face.base_url + "/transmission/rpc"

    @property
    def port(self) -> int:
        return int(self.face.port)

    async def share(self, name: str, size: int, piece_size: int | None = None) -> tuple[Path, str]:
        """A random file the seeder seeds: (its path, a magnet naming the seeder as its peer)."""
        src = self.root / "share" / name
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(os.urandom(size))
        t = await self.seeder.seed(src, piece_size=piece_size)
        return src, self.seeder.magnet(t)


@contextlib.asynccontextmanager
async def faces_lab(router: Any, sam_pool: Any, root: Path, **http: Any) -> AsyncIterator[Lab]:
    seed_session, daemon_session = await sam_pool.streams(*SESSIONS)
    seeder = Client(ClientConfig(root / "seed", router.sam, router.session_options), session=seed_session)
    client = Client(ClientConfig(root / "daemon", router.sam, router.session_options), session=daemon_session)
    await asyncio.gather(seeder.start(), client.start())
    face = None
    try:
        cfg = Config(data_dir=root / "daemon", download_dir=root / "downloads")
        daemon = Daemon(client, Registry.load(cfg.data_dir / "daemon" / "torrents.json"), cfg.data_dir)
        face = http_face(daemon, cfg, HttpOptions(port=0, **http), client.b32,
                         f"{router.sam.host}:{router.sam.port}")
        await face.start()
        seed_limits = asyncio.ensure_future(daemon.run_upkeep())  # as run_daemon does
        try:
            yield Lab(seeder, daemon, face, root)
        finally:
            seed_limits.cancel()
    finally:
        if face is not None:
            await face.close()
        await client.close()
        await seeder.close()
