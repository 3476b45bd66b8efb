"""One tracker instance on loopback sharing its swarms through Redis, as a process a test can SIGKILL.

    python tests/tracker_instance.py REDIS_URL [--private] [--heartbeat SECONDS]

Prints {"port": N, "instance": ID} once serving. Callers are identified by the X-Test-Dest header
(configured here, for tests only), so a peer keeps its identity when it reconnects elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from i2ptorrent.tracker.limits import TrackerLimits  # noqa: E402
from i2ptorrent.tracker.redis_store import HEARTBEAT, RedisSwarmStore  # noqa: E402
from i2ptorrent.tracker.server import TrackerServer  # noqa: E402

HEADER = "X-Test-Dest"


async def main(url: str, private: bool, heartbeat: float) -> None:
    store = await RedisSwarmStore.connect(url, private=private, heartbeat=heartbeat)
    server = TrackerServer(store=store, identity_header=HEADER,
                           limits=TrackerLimits(rate_per_second=1000.0, rate_burst=1000.0))
    port = await server.start_tcp()
    print(json.dumps({"port": port, "instance": store.instance}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    args = sys.argv[2:]
    beat = float(args[args.index("--heartbeat") + 1]) if "--heartbeat" in args else HEARTBEAT
    asyncio.run(main(sys.argv[1], "--private" in args, beat))
