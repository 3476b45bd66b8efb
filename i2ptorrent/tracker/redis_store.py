"""The shared swarm store in Redis: several tracker instances serve the same swarms.

Shape: every instance's core keeps a full local view and answers from it (no Redis round trip on an
announce). This adapter carries what the core leaves in `changes`/`outbox` (shared.py):
  - peer changes: one Lua call per event-loop iteration writes them (hash per swarm, a sorted set of
    wall-clock "last seen" for expiry) and appends the batch to one stream, atomically. Every instance
    reads that stream and applies it, so views converge on the stream's order. A starting instance
    loads a snapshot taken atomically with the stream's last id, then reads on from there.
  - offers and answers for a peer on another instance: PUBLISH on that instance's channel.
  - liveness: every HEARTBEAT each instance refreshes its record (it lapses after LAPSE beats
    unheard, on Redis's clock; whoever beats next deletes it), and learns from the same call which instances are
    live: the status page and /stats.json show them. A dead instance's peers are not touched: they
    expire like any peer, or move when they reconnect elsewhere.
  - invites: spent by one Lua script (read, delete, check the wall-clock expiry, allowlist), so an
    invite is spent once whichever instance sees it; the allowlist is cached and refreshed on a
    PUBLISH from whoever changed it.
Redis unreachable: `connect` raises StoreUnavailable (one clear error at start); later, each loop logs
the outage once, retries with backoff and catches up (resnapshot when the stream moved past it),
while the instance keeps serving its own peers from its view.

The Redis URL must point at loopback or a unix socket: like every other socket of i2ptorrent, the
store is never reached over a non-loopback address (tunnel it for instances on several machines).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import zlib
from collections import defaultdict
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from redis import asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from .. import clocks
from ..loopback import is_loopback
from .access import _digest, new_invite_token, normalize_destination
from .identity import b32_to_hash
from .shared import PeerChange, Redeem, RemoteAnswer, RemoteOffer

if TYPE_CHECKING:
    from .server import TrackerServer

log = logging.getLogger(__name__)

PREFIX = "i2pt:"
STREAM_MAXLEN = 200_000  # change batches kept for instances that fell behind (then: resnapshot)
MAX_QUEUED_CHANGES = 200_000  # while Redis is away; past this the queue is dropped and re-shared
MAX_RELAY_BATCH = 2000  # items per PUBLISH
MAX_RELAY_BYTES = 64 * 1024 * 1024  # one PUBLISH, uncompressed
# Big relay batches are zlib-compressed: an instance under load reads its channel only once per
# event-loop turn (at most 256 KiB per turn), and SDPs compress several times over. Small batches (light
# load) go as they are: zlib's fixed cost is ~10 us per call, 12 % of the tracker's CPU at 1000 announces/s.
RELAY_COMPRESSION = 1
RELAY_COMPRESS_FROM = 8 * 1024  # bytes of JSON (~10 offers)
CONNECT_TIMEOUT = 5.0
RETRY_MIN, RETRY_MAX = 0.5, 10.0
OUTAGE_LOG_EVERY = 60.0
POLL = 1.0  # seconds a blocking read waits before the loop looks at `closed` again
HEARTBEAT = 10.0  # seconds between an instance's liveness records
LAPSE = 3  # heartbeats an instance may miss before the others count it dead

# ARGV: prefix, instance, maxlen, change... (each change a JSON array, see _encode)
APPLY = """
local p, inst, maxlen = ARGV[1], ARGV[2], ARGV[3]
for i = 4, #ARGV do
  local c = cjson.decode(ARGV[i])
  local ih = c[1]
  local field = (c[3] == 1 and 'w' or 'h') .. c[2]
  local key = p .. 'peers:' .. ih
  local member = cjson.encode({ih, field})
  if c[11] == 1 then
    local cur = redis.call('HGET', key, field)
    if cur then
      local r = cjson.decode(cur)
      if r[4] == c[4] and (c[3] == 0 or r[5] == c[5]) then
        redis.call('HDEL', key, field)
        redis.call('ZREM', p .. 'seen', member)
        if redis.call('HLEN', key) == 0 then
          redis.call('SREM', p .. 'swarms', ih)
          redis.call('HDEL', p .. 'downloaded', ih)
        end
      end
    end
  else
    redis.call('HSET', key, field, ARGV[i])
    redis.call('ZADD', p .. 'seen', c[9], member)
    redis.call('SADD', p .. 'swarms', ih)
    if c[10] == 1 then redis.call('HINCRBY', p .. 'downloaded', ih, 1) end
  end
end
return redis.call('XADD', p .. 'changes', 'MAXLEN', '~', maxlen, '*', 'i', inst,
                  'b', '[' .. table.concat(ARGV, ',', 4) .. ']')
"""

# ARGV: prefix -> {last stream id, ih, downloaded, '[rec,...]', ih, ...}
SNAPSHOT = """
local p = ARGV[1]
local last = redis.call('XREVRANGE', p .. 'changes', '+', '-', 'COUNT', 1)
local out = {#last > 0 and last[1][1] or '0-0'}
for _, ih in ipairs(redis.call('SMEMBERS', p .. 'swarms')) do
  local recs = redis.call('HVALS', p .. 'peers:' .. ih)
  if #recs > 0 then
    out[#out + 1] = ih
    out[#out + 1] = redis.call('HGET', p .. 'downloaded', ih) or '0'
    out[#out + 1] = '[' .. table.concat(recs, ',') .. ']'
  end
end
return out
"""

# ARGV: prefix, wall-clock cutoff -> peers removed (a bounded number per call)
PURGE = """
local p = ARGV[1]
local gone = redis.call('ZRANGEBYSCORE', p .. 'seen', '-inf', ARGV[2], 'LIMIT', 0, 5000)
for _, m in ipairs(gone) do
  local k = cjson.decode(m)
  local key = p .. 'peers:' .. k[1]
  redis.call('HDEL', key, k[2])
  redis.call('ZREM', p .. 'seen', m)
  if redis.call('HLEN', key) == 0 then
    redis.call('SREM', p .. 'swarms', k[1])
    redis.call('HDEL', p .. 'downloaded', k[1])
  end
end
return #gone
"""

# ARGV: prefix, instance, its record (JSON), seconds it stays live -> {instance, record, ...} of every
# live instance. Expiry is on Redis's clock, so instances on machines with skewed clocks still agree.
BEAT = """
local records, expiry = ARGV[1] .. 'instances', ARGV[1] .. 'instances:expire'
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('HSET', records, ARGV[2], ARGV[3])
redis.call('ZADD', expiry, now + tonumber(ARGV[4]), ARGV[2])
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', expiry, '-inf', now)) do
  redis.call('HDEL', records, gone)
  redis.call('ZREM', expiry, gone)
end
return redis.call('HGETALL', records)
"""

# ARGV: prefix, sha256(token), name, wall-clock now -> 1 when the invite was spent on `name`
REDEEM = """
local p = ARGV[1]
local expires = redis.call('HGET', p .. 'invites', ARGV[2])
if not expires then return 0 end
redis.call('HDEL', p .. 'invites', ARGV[2])
if expires ~= '' and tonumber(expires) < tonumber(ARGV[4]) then return 0 end
redis.call('SADD', p .. 'allowed', ARGV[3])
redis.call('PUBLISH', p .. 'access', 'allow')
return 1
"""


class StoreUnavailable(Exception):
    """Redis cannot be reached (or the URL is not one we may use)."""


def check_url(url: str) -> str:
    """The URL as given when it names loopback or a unix socket; the text of the error otherwise."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return url
    if parts.scheme not in ("redis", "rediss"):
        raise StoreUnavailable(f"not a Redis URL: {safe_url(url)!r} (redis://127.0.0.1:6379/0 or unix:///path)")
    host = parts.hostname or ""
    if not is_loopback(host):
        raise StoreUnavailable(f"Redis at {host!r}: only loopback or a unix socket (tunnel a remote Redis to "
                               "loopback; i2ptorrent opens no socket to another address)")
    return url


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


async def open_redis(url: str, timeout: float = CONNECT_TIMEOUT) -> aioredis.Redis:
    """A client that answered a PING, or StoreUnavailable saying why not."""
    check_url(url)
    client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout * 3,
                                     health_check_interval=30)
    try:
        await asyncio.wait_for(client.ping(), timeout * 2)
    except (RedisError, OSError, asyncio.TimeoutError) as err:
        await client.aclose()
        raise StoreUnavailable(f"cannot reach Redis at {safe_url(url)}: {err or type(err).__name__}") from None
    return client


class SharedAccess:
    """The private tracker's allowlist and invites in Redis; `is_allowed` answers from a local copy."""

    shared = True  # the core emits Redeem instead of calling `redeem`

    def __init__(self, redis: aioredis.Redis, private: bool = True, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.private = private
        self.prefix = prefix
        self.allowed: set[str] = set()

    def is_allowed(self, name: str) -> bool:
        return not self.private or name in self.allowed

    def redeem(self, token: str, name: str) -> bool:
        return False  # never asked: invites are spent in the store (`spend`)

    async def refresh(self) -> bool:
        """Re-read the allowlist; True when it changed."""
        allowed = {m.decode() for m in await self.redis.smembers(self.prefix + "allowed")}
        changed, self.allowed = allowed != self.allowed, allowed
        return changed

    async def spend(self, token: str, name: str) -> bool:
        """Spend an invite on `name` in one atomic script; expiry is wall-clock, like its record."""
        if b32_to_hash(name) is None:
            return False
        spent = await self.redis.eval(REDEEM, 0, self.prefix, _digest(token), name, repr(clocks.wall()))
        if spent:
            self.allowed.add(name)
        return bool(spent)

    # -- the CLI's edits (`i2ptorrent tracker invite|allow|revoke|show --redis URL`) --------------

    async def invite(self, ttl: float | None = None) -> str:
        token = new_invite_token()
        expires = "" if ttl is None else repr(clocks.wall() + ttl)
        await self.redis.hset(self.prefix + "invites", _digest(token), expires)
        return token

    async def allow(self, destination: str) -> str:
        name = normalize_destination(destination)
        await self.redis.sadd(self.prefix + "allowed", name)
        await self.redis.publish(self.prefix + "access", "allow")
        return name

    async def revoke(self, destination: str) -> bool:
        name = normalize_destination(destination)
        removed = await self.redis.srem(self.prefix + "allowed", name)
        await self.redis.publish(self.prefix + "access", "revoke")
        return bool(removed)

    async def show(self) -> tuple[list[str], dict[str, float | None]]:
        allowed = sorted(m.decode() for m in await self.redis.smembers(self.prefix + "allowed"))
        invites = {k.decode(): (float(v) if v else None)
                   for k, v in (await self.redis.hgetall(self.prefix + "invites")).items()}
        return allowed, invites


class _Outage:
    """Logs a failing loop once per outage (and every OUTAGE_LOG_EVERY), and its recovery."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.since: float | None = None
        self.logged = 0.0
        self.delay = RETRY_MIN

    def failed(self, err: BaseException) -> float:
        now = clocks.monotonic()
        if self.since is None:
            self.since = now
            self.logged = now
            log.warning("Redis %s failed, retrying: %s", self.what, err or type(err).__name__)
        elif now - self.logged >= OUTAGE_LOG_EVERY:
            self.logged = now
            log.warning("Redis %s still failing after %.0f s: %s", self.what, now - self.since, err)
        delay, self.delay = self.delay, min(self.delay * 2, RETRY_MAX)
        return delay

    def ok(self) -> None:
        if self.since is not None:
            log.warning("Redis %s works again after %.0f s", self.what, clocks.monotonic() - self.since)
        self.since, self.delay = None, RETRY_MIN


class RedisSwarmStore:
    """Connects one TrackerServer's core to the swarms shared in Redis. See the module docstring."""

    def __init__(self, redis: aioredis.Redis, *, private: bool = False, prefix: str = PREFIX,
                 instance: str | None = None, heartbeat: float = HEARTBEAT) -> None:
        self.redis = redis
        self.prefix = prefix
        self.instance = instance or uuid.uuid4().hex[:12]
        self.heartbeat = heartbeat
        self.started = clocks.wall()
        self.instances: dict[str, dict[str, Any]] = {}  # live instances (ours included), as last heard
        self.access = SharedAccess(redis, private, prefix)
        self.server: TrackerServer | None = None
        self._queued: list[bytes] = []  # encoded changes not yet written
        self._relays: dict[str, list[list[Any]]] = defaultdict(list)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._redeems: set[asyncio.Task[None]] = set()
        self._last_id = b"0-0"
        self._apply_sha = ""
        self._reshare = False
        self.closed = False

    @classmethod
    async def connect(cls, url: str, **kw: Any) -> "RedisSwarmStore":
        """Raises StoreUnavailable when Redis does not answer: the one clear error at start."""
        return cls(await open_redis(url), **kw)

    # -- lifecycle (the server calls these) --------------------------------------------------------

    async def start(self, server: "TrackerServer") -> None:
        """Load the allowlist and a snapshot of every swarm, then follow the others."""
        self.server = server
        try:
            self._apply_sha = await self.redis.script_load(APPLY)
            await self.access.refresh()
            await self._load_snapshot()
            await self.beat()
        except (RedisError, OSError) as err:
            raise StoreUnavailable(f"Redis: {err}") from None
        loop = asyncio.get_running_loop()
        for coro, name in ((self._writer(), "writer"), (self._follow(), "follower"),
                           (self._listen(), "listener"), (self._beat_loop(), "heartbeat")):
            task = loop.create_task(coro, name=f"redis-{name}")
            task.add_done_callback(_log_death)
            self._tasks.append(task)

    async def close(self) -> None:
        """Stop carrying changes: the peers of a stopped instance keep their place in the swarms
        (they reconnect to another instance); nothing of their disconnect is written."""
        self.closed = True
        tasks = [*self._tasks, *self._redeems]
        for task in tasks:
            task.cancel()
        if tasks:  # redis-py's pubsub read can swallow a cancel: the loops also watch `closed`
            await asyncio.wait(tasks, timeout=POLL * 3)
        with contextlib.suppress(RedisError, OSError, asyncio.TimeoutError):  # a clean stop is not live
            pipe = self.redis.pipeline(transaction=False)
            pipe.hdel(self.prefix + "instances", self.instance)
            pipe.zrem(self.prefix + "instances:expire", self.instance)
            await asyncio.wait_for(pipe.execute(), POLL)
        await self.redis.aclose()

    def wake(self) -> None:
        """The core left changes or relays: take them now, send them in this iteration's batch."""
        if self.closed or self.server is None:
            return
        core = self.server.core
        if core.changes:
            offset = clocks.wall() - self.server.clock()
            self._queued.extend(_encode(ch, offset) for ch in core.changes)
            core.changes.clear()
            if len(self._queued) > MAX_QUEUED_CHANGES:
                self._queued.clear()  # Redis has been away long: share our peers afresh when it is back
                self._reshare = True
        for item in core.outbox:
            if isinstance(item, RemoteOffer):
                self._relays[item.home].append(["o", item.target_conn, item.target_peer_id, item.info_hash,
                                                item.offer_id, item.from_home, item.from_conn, item.from_peer_id,
                                                item.frame.decode()])
            elif isinstance(item, RemoteAnswer):
                self._relays[item.home].append(["a", item.target_conn, item.info_hash, item.to_peer_id,
                                                item.frame.decode()])
            elif isinstance(item, Redeem):
                task = asyncio.get_running_loop().create_task(self._redeem(item))
                self._redeems.add(task)
                task.add_done_callback(self._redeems.discard)
        core.outbox.clear()
        self._wake.set()

    async def spend(self, token: str, name: str) -> bool:
        return await self.access.spend(token, name)

    async def sweep(self, before: float) -> None:
        """Drop peers not seen since `before` (the core's clock) from the store; refresh access."""
        assert self.server is not None
        cutoff = before + clocks.wall() - self.server.clock()
        while await self.redis.eval(PURGE, 0, self.prefix, repr(cutoff)) >= 5000:
            pass
        if await self.access.refresh():
            self.server.access_changed()

    # -- the loops ---------------------------------------------------------------------------------

    async def _writer(self) -> None:
        outage = _Outage("write")
        while True:
            await self._wake.wait()
            self._wake.clear()
            changes, self._queued = self._queued, []
            relays, self._relays = self._relays, defaultdict(list)
            try:
                await self._write(changes, relays)
                outage.ok()
            except (RedisError, OSError) as err:
                # Changes wait for Redis (in order, bounded); offers are dropped: they time out anyway.
                self._queued[:0] = changes
                if len(self._queued) > MAX_QUEUED_CHANGES:
                    self._queued.clear()
                    self._reshare = True
                await asyncio.sleep(outage.failed(err))
                self._wake.set()

    async def _write(self, changes: list[bytes], relays: dict[str, list[list[Any]]]) -> None:
        if self._reshare and self.server is not None:
            self._reshare = False
            self.server.core.reshare(self.server.clock())
            self.wake()
        pipe = self.redis.pipeline(transaction=False)
        if changes:
            pipe.evalsha(self._apply_sha, 0, self.prefix, self.instance, STREAM_MAXLEN, *changes)
        for home, items in relays.items():
            for i in range(0, len(items), MAX_RELAY_BATCH):
                pipe.publish(f"{self.prefix}relay:{home}", _pack(items[i:i + MAX_RELAY_BATCH]))
        if not changes and not relays:
            return
        try:
            await pipe.execute()
        except NoScriptError:  # Redis restarted and forgot the script: load it, write again
            self._apply_sha = await self.redis.script_load(APPLY)
            await self._write(changes, relays)

    async def _follow(self) -> None:
        """Apply every instance's changes, in the stream's order."""
        outage = _Outage("change stream")
        key = self.prefix + "changes"
        while not self.closed:
            try:
                if outage.since is not None and await self._fell_behind(key):
                    await self._load_snapshot(resync=True)
                reply = await self.redis.xread({key: self._last_id}, count=500, block=int(POLL * 1000))
                outage.ok()
            except (RedisError, OSError) as err:
                await asyncio.sleep(outage.failed(err))
                continue
            for _, entries in reply or ():
                self._apply_entries(entries)

    async def _listen(self) -> None:
        """Offers and answers for our connections; allowlist edits by anyone."""
        outage = _Outage("relay channel")
        relay, access = f"{self.prefix}relay:{self.instance}".encode(), (self.prefix + "access").encode()
        while not self.closed:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(relay, access)
                outage.ok()
                if await self.access.refresh():  # edits made while we were not listening
                    self._access_changed()
                while not self.closed:
                    msg = await pubsub.get_message(timeout=POLL)
                    if msg is None:
                        continue
                    if msg["channel"] == relay:
                        self._deliver(_unpack(msg["data"]))
                    elif await self.access.refresh():
                        self._access_changed()
            except (RedisError, OSError) as err:
                await asyncio.sleep(outage.failed(err))
            finally:
                with contextlib.suppress(BaseException):
                    await pubsub.aclose()

    async def _beat_loop(self) -> None:
        outage = _Outage("heartbeat")
        delay = self.heartbeat
        while not self.closed:
            await asyncio.sleep(delay)
            try:
                await self.beat()
                outage.ok()
                delay = self.heartbeat
            except (RedisError, OSError) as err:
                delay = min(outage.failed(err), self.heartbeat)

    async def beat(self) -> None:
        """Refresh our liveness record; learn which instances are live."""
        core = self.server.core if self.server is not None else None
        record = {"started": round(self.started, 3), "websockets": len(core.connections) if core else 0,
                  "announces": core.counters["announces"] if core else 0}
        reply = await self.redis.eval(BEAT, 0, self.prefix, self.instance, orjson.dumps(record),
                                      repr(LAPSE * self.heartbeat))
        self.instances = {reply[i].decode(): orjson.loads(reply[i + 1]) for i in range(0, len(reply), 2)}

    # -- helpers -----------------------------------------------------------------------------------

    async def _redeem(self, item: Redeem) -> None:
        try:
            ok: bool | None = await self.access.spend(item.token, item.name)
        except (RedisError, OSError) as err:
            log.warning("Redis: could not check an invite: %s", err)
            ok = None
        if self.server is not None and not self.closed:
            self.server.core_redeemed(item.conn_id, ok)

    def _deliver(self, items: list[list[Any]]) -> None:
        server = self.server
        if server is None or self.closed:
            return
        core, now, out = server.core, server.clock(), []
        for it in items:
            if it[0] == "o":
                out += core.deliver_offer(RemoteOffer(self.instance, it[1], it[2], it[3], it[4], it[5], it[6],
                                                      it[7], it[8].encode()), now)
            else:
                out += core.deliver_answer(it[1], it[2], it[3], it[4].encode())
        if out:
            server.send(out)

    def _apply_entries(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        assert self.server is not None
        offset = clocks.wall() - self.server.clock()
        changes: list[PeerChange] = []
        for entry_id, fields in entries:
            self._last_id = entry_id
            changes += [_decode(item, offset) for item in orjson.loads(fields[b"b"])]
        self.server.core.apply(changes)
        if self.server.core.changes or self.server.core.outbox:
            self.wake()

    async def _fell_behind(self, key: str) -> bool:
        try:
            info = await self.redis.xinfo_stream(key)
        except ResponseError:  # no stream (an empty or restarted Redis)
            return self._last_id != b"0-0"
        first = info.get("first-entry")
        return first is not None and _stream_id(first[0]) > _stream_id(self._last_id)

    async def _load_snapshot(self, resync: bool = False) -> None:
        assert self.server is not None
        reply = await self.redis.eval(SNAPSHOT, 0, self.prefix)
        offset = clocks.wall() - self.server.clock()
        self._last_id = reply[0]
        changes: list[PeerChange] = []
        downloaded: dict[str, int] = {}
        for i in range(1, len(reply), 3):
            recs = orjson.loads(reply[i + 2])
            changes += [_decode(r, offset) for r in recs]
            if recs:
                downloaded[recs[0][0]] = int(reply[i + 1])
        core = self.server.core
        if resync:
            core.drop_others()
            log.warning("Redis: change stream moved past this instance; reloaded %d peers", len(changes))
        core.apply(changes, downloaded)

    def _access_changed(self) -> None:
        if self.server is not None:
            self.server.access_changed()


def _encode(ch: PeerChange, offset: float) -> bytes:
    """[info_hash, peer_id, ws, home, conn, name, dest, complete, wall seen, completed, removed]"""
    return orjson.dumps([ch.info_hash, ch.peer_id, 1 if ch.websocket else 0, ch.home, ch.conn, ch.name,
                         ch.destination, 1 if ch.complete else 0, round(ch.seen + offset, 3),
                         1 if ch.completed else 0, 1 if ch.removed else 0])


def _decode(c: list[Any], offset: float) -> PeerChange:
    return PeerChange(c[0], c[1], c[2] == 1, c[3], c[4], c[5], c[6], c[7] == 1, c[8] - offset, c[9] == 1,
                      c[10] == 1)


def _pack(items: list[list[Any]]) -> bytes:
    """JSON, zlib-compressed when big (a JSON array starts with '[', a zlib stream never does)."""
    raw = orjson.dumps(items)
    return zlib.compress(raw, RELAY_COMPRESSION) if len(raw) >= RELAY_COMPRESS_FROM else raw


def _unpack(data: bytes) -> list[list[Any]]:
    if data[:1] == b"[":  # a small batch, uncompressed
        raw, oversized = data, len(data) > MAX_RELAY_BYTES
    else:
        inflate = zlib.decompressobj()
        raw = inflate.decompress(data, MAX_RELAY_BYTES)
        oversized = bool(inflate.unconsumed_tail)
    if oversized:
        log.warning("Redis: dropped an oversized relay batch")
        return []
    return orjson.loads(raw)


def _stream_id(value: bytes | str) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _log_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("Redis store task %s died", task.get_name(), exc_info=task.exception())

