"""What a long-running command holds while it runs: the stop signal, the data directory's lock, the I2P
router, a started Client and the browser bridge on it; each released in reverse order on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from i2ptorrent.app.disk import writable_dir
from i2ptorrent.app.errors import EXIT_INTERRUPTED, EXIT_USAGE, UserError
from i2ptorrent.app.progress import format_rate
from i2ptorrent.supervisor import wait_at_most
from i2ptorrent.config import Config, open_router

if TYPE_CHECKING:
    from i2ptorrent.app.output import Output
    from i2ptorrent.client import Client

T = TypeVar("T")


class StopSignal:
    """SIGINT/SIGTERM set an event instead of raising, so we always close cleanly (resume data saved)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.count = 0

    def __enter__(self) -> "StopSignal":
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._fire)
        return self

    def _fire(self) -> None:
        self.count += 1
        if self.count > 1:  # a second Ctrl-C: the user wants out now
            os._exit(EXIT_INTERRUPTED)
        self.event.set()

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    async def guard(self, aw: Awaitable[T]) -> T:
        """Await `aw`, or cancel it and raise UserError(130) if a stop is requested first."""
        task = asyncio.ensure_future(aw)
        waiter = asyncio.ensure_future(self.event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise UserError("interrupted", EXIT_INTERRUPTED)
        return task.result()

    async def sleep(self, seconds: float) -> bool:
        """Sleep; True if a stop was requested meanwhile."""
        await wait_at_most(self.event.wait(), seconds)
        return self.event.is_set()


class DataDirLock:
    """One process per data directory: two would share one I2P identity and one set of resume files."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 16).decode(errors="replace").strip()
            os.close(fd)
            raise UserError(f"data directory {self.path.parent} is in use by another i2ptorrent process"
                            f"{f' (pid {holder})' if holder.isdigit() else ''}: one process per data directory; "
                            f"run `i2ptorrent daemon` to handle several torrents, or pass --data-dir DIR",
                            EXIT_USAGE) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[DataDirLock]:
    """Hold `data_dir`'s lock (created and checked writable first) for the duration."""
    lock = DataDirLock(writable_dir(data_dir))
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


@contextlib.asynccontextmanager
async def i2p_router(cfg: Config, private: bool, say: Callable[[str], None]) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    """(SAM address, session options): the configured bridge, or a private router we start and stop."""
    if private:
        say("starting a private I2P router (loopback only: peers on other machines cannot reach it)")
    async with open_router(None if private else cfg.sam, cfg.session_options) as found:
        yield found


@contextlib.asynccontextmanager
async def running_client(cfg: Config, out: "Output", stop: StopSignal, *, private: bool = False,
                         invite: str | None = None) -> AsyncIterator["Client"]:
    """A started Client on the configured router (or a private one), closed (resume saved) on exit.

    Building tunnels takes 20 s to minutes: Ctrl-C meanwhile abandons the start at once (exit 130).
    """
    from i2ptorrent.client import Client, ClientConfig

    if cfg.download_rate or cfg.upload_rate:
        out.say("rate limits: download " + (format_rate(cfg.download_rate) if cfg.download_rate else "unlimited")
                + ", upload " + (format_rate(cfg.upload_rate) if cfg.upload_rate else "unlimited"))
    with locked(cfg.data_dir):
        async with i2p_router(cfg, private, out.say) as (sam, options):
            out.say(f"connecting to I2P through SAM at {sam.host}:{sam.port} (building tunnels)...")
            client = Client(ClientConfig(data_dir=cfg.data_dir, sam=sam, session_options=options,
                                         max_peers=cfg.max_peers, download_rate=cfg.download_rate,
                                         upload_rate=cfg.upload_rate, invite=invite))
            try:
                await stop.guard(client.start())
            except BaseException:
                await client.close()
                raise
            try:
                out.say(f"I2P address: {client.b32}")
                yield client
            finally:
                await client.close()


async def start_bridge(client: "Client", port: int, new_secret: bool = False, **options: Any) -> Any:
    """The browser bridge on 127.0.0.1:port serving the client's torrents (options: see bridge.Bridge).
    Its secret is kept in the data directory, so the page the user gave its URL keeps working."""
    from i2ptorrent.bridge import SECRET_FILE, Bridge, BridgeError, load_or_create_secret

    secret = load_or_create_secret(client.config.data_dir / SECRET_FILE, renew=new_secret)
    bridge = Bridge(client, secret=secret, port=port, **options)
    try:
        await bridge.start()
    except BridgeError as exc:
        raise UserError(str(exc), EXIT_USAGE) from None
    return bridge
