"""A loopback SAM proxy that lets libtorrent's own I2P client use our private i2pd 2.45.

libtorrent asks for a LeaseSet2 with `i2cp.leaseSetEncType`; i2pd 2.45 fails local lookups of LeaseSet2
("incorrect number of leases"), so on a private router such a destination is never found. The proxy
rewrites each SESSION CREATE to use the old lease set (as our own sessions do) and passes every other
byte through unchanged. It also tells when the router accepted the session, so a test need not wait for
libtorrent's own announce retry (about 35 s after its first, failed one).
"""

from __future__ import annotations

import asyncio
import contextlib

MAX_LINE = 64 * 1024


def rewrite_session_create(line: bytes) -> bytes:
    """SESSION CREATE with i2cp.leaseSetType=1 and without i2cp.leaseSetEncType; other lines unchanged."""
    if not line.startswith(b"SESSION CREATE"):
        return line
    words = [w for w in line.split() if not w.startswith((b"i2cp.leaseSetEncType=", b"i2cp.leaseSetType="))]
    return b" ".join([*words, b"i2cp.leaseSetType=1"]) + b"\n"


class SessionRewritingProxy:
    """`async with SessionRewritingProxy(sam_host, sam_port) as proxy:` then point a client at proxy.port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.session_ready = asyncio.Event()
        self.destination: str | None = None
        """The client's own public destination (base64), from the router's answer to NAMING LOOKUP NAME=ME."""
        self.commands: list[bytes] = []
        self.dialled: list[str] = []
        """The DESTINATION of every STREAM CONNECT, as the client gave it (a name or a base64 destination)."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> "SessionRewritingProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=MAX_LINE)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Cancelled only when the proxy closes. It must end quietly: Python 3.11's start_server asks a
        # cancelled handler task for its exception and logs the CancelledError as a failed callback.
        with contextlib.suppress(asyncio.CancelledError):
            await self._serve(cr, cw)

    async def _serve(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            rr, rw = await asyncio.open_connection(*self.target, limit=MAX_LINE)
        except OSError:
            cw.close()
            return
        self._spawn(self._down(rr, cw))
        try:
            while line := await cr.readline():
                line = rewrite_session_create(line)
                self.commands.append(b" ".join(line.split()[:2]))
                if line.startswith(b"STREAM CONNECT"):
                    self.dialled += [w[len(b"DESTINATION="):].decode("ascii", "replace")
                                     for w in line.split() if w.startswith(b"DESTINATION=")]
                rw.write(line)
                await rw.drain()
                if line.startswith((b"STREAM CONNECT", b"STREAM ACCEPT")):
                    await self._pipe(cr, rw)  # from here on: stream data, passed through as is
                    break
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            rw.close()
            cw.close()

    async def _down(self, rr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError, ValueError):
            first = await rr.readline()
            while first:
                if first.startswith(b"SESSION STATUS RESULT=OK"):
                    self.session_ready.set()
                if first.startswith(b"NAMING REPLY RESULT=OK NAME=ME VALUE="):
                    self.destination = first.split(b"VALUE=", 1)[1].split()[0].decode()
                cw.write(first)
                await cw.drain()
                if not first.startswith((b"HELLO", b"SESSION", b"NAMING")):
                    break  # a stream's status or data: pass the rest through
                first = await rr.readline()
            await self._pipe(rr, cw)
        cw.close()

    @staticmethod
    async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
