"""A seeding node as a process a test can SIGKILL and start again under the same keys.

    python tests/recovery_node.py SAM_HOST:PORT DATA_DIR FILE [--no-check]

Prints {"b32": ..., "magnet": ..., "info_hash": ...} once seeding (upload limited to 64 KB/s, so streams
stay busy). `--no-check` switches off the reachability check after a same-key start (tests only: it shows
what the check is for).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from i2ptorrent import client as client_module  # noqa: E402
from i2ptorrent.client import Client, ClientConfig  # noqa: E402
from i2ptorrent.transport.router import LOCAL_ROUTER_OPTIONS  # noqa: E402
from i2ptorrent.transport.sam import SAMAddress  # noqa: E402
from i2ptorrent.transport.session_keeper import KeptStreamSession  # noqa: E402


def without_check() -> None:
    create = KeptStreamSession.create.__func__  # type: ignore[attr-defined]

    async def unchecked(cls, *args, **kw):  # type: ignore[no-untyped-def]
        kw["probe_first"] = False
        return await create(cls, *args, **kw)

    client_module.KeptStreamSession.create = classmethod(unchecked)  # type: ignore[method-assign]


async def main(sam: str, data_dir: Path, share: Path) -> None:
    host, _, port = sam.rpartition(":")
    cfg = ClientConfig(data_dir, SAMAddress(host, int(port)), dict(LOCAL_ROUTER_OPTIONS), webrtc=False,
                       upload_rate=64 * 1024)
    node = await Client(cfg).start()
    t = await node.seed(share, piece_size=64 * 1024)
    print(json.dumps({"b32": node.b32, "magnet": node.magnet(t), "info_hash": t.info_hash.hex()}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if "--no-check" in sys.argv[4:]:
        without_check()
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])))
