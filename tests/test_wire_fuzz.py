"""Fuzzing the peer wire: random and mutated byte streams may only ever raise ProtocolError.

The pytest run does WIRE_FUZZ_N inputs (default 30 000, a few seconds); the full 100 000 run is
`python tests/test_wire_fuzz.py 100000 [seed]`, which prints what it saw.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
import sys
import time
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from i2ptorrent.wire import PeerWire, ProtocolError, Request, bencode, encode_pex

INFO_HASH = hashlib.sha1(b"fuzz torrent").digest()
GEO = dict(num_pieces=20, piece_length=32768, total_length=19 * 32768 + 777)
MAX_BUFFERED = 4 + 2 + 16384 + 1024  # one maximal (extended) message plus its length prefix
# Blocks and metadata pieces the fuzzed receiver has asked for, so mutated `piece` and ut_metadata data
# messages get past "nobody asked" and exercise the deeper checks.
OUR_REQUESTS = [Request(0, 0, 16384), Request(3, 16384, 16384), Request(19, 0, 777), Request(5, 100, 10)]


PEX_PEER = "a" * 52 + ".b32.i2p"


def frame(msg_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IB", len(payload) + 1, msg_id) + payload


def handshake(fast: bool, ext: bool) -> bytes:
    reserved = bytearray(8)
    reserved[5] |= 0x10 if ext else 0
    reserved[7] |= 0x04 if fast else 0
    return b"\x13BitTorrent protocol" + bytes(reserved) + INFO_HASH + b"F" * 20


def corpus() -> list[bytes]:
    """Valid message streams (after the handshake) for mutation."""
    t3 = lambda i, b, n: struct.pack(">III", i, b, n)  # noqa: E731
    meta = bencode({"msg_type": 1, "piece": 0, "total_size": 20000})
    return [
        frame(5, b"\xff\xff\xf0") + frame(1) + frame(2) + frame(4, struct.pack(">I", 7)) + b"\0\0\0\0",
        frame(14) + frame(17, struct.pack(">I", 3)) + frame(13, struct.pack(">I", 9)) + frame(1),
        frame(15) + frame(6, t3(1, 0, 16384)) + frame(8, t3(1, 0, 16384)) + frame(3),
        frame(7, struct.pack(">II", 0, 0) + bytes(16384)) + frame(16, t3(3, 16384, 16384)) + frame(0),
        frame(7, struct.pack(">II", 19, 0) + bytes(777)) + frame(7, struct.pack(">II", 5, 100) + b"x" * 10),
        frame(20, b"\x00" + bencode({"m": {"ut_metadata": 2, "i2p_pex": 5}, "metadata_size": 20000,
                                      "v": "fuzz", "reqq": 10})),
        frame(20, b"\x03" + meta + bytes(16384)) + frame(20, b"\x03" + bencode({"msg_type": 2, "piece": 1})),
        frame(20, b"\x03" + bencode({"msg_type": 0, "piece": 0})) + frame(9, b"\x1a\xe1") + frame(99, b"?"),
        frame(20, b"\x03" + bencode({"msg_type": 1, "piece": 1, "total_size": 20000}) + bytes(3616)),
        frame(6, t3(2, 0, 16384)) * 3 + frame(8, t3(2, 0, 16384)) + frame(6, t3(19, 0, 777)),
        frame(20, b"\x03" + bencode([1, 2])) + frame(20, b"\x00" + bencode({"m": {"ut_metadata": 0}})),
        frame(20, b"\x09" + encode_pex([PEX_PEER], [PEX_PEER]))
        + frame(20, b"\x09" + bencode({"added": b"x" * 70})),
    ]


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        choice = rng.random()
        if not buf or choice < 0.1:
            buf += rng.choice(pool)
        elif choice < 0.4:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif choice < 0.55:
            pos = rng.randrange(len(buf))
            buf[pos : pos + 4] = struct.pack(">I", rng.choice([0, 1, 5, 13, 16393, 16394, 17410, 2**31, 2**32 - 1,
                                                              rng.randrange(2**32)]))
        elif choice < 0.7:
            pos = rng.randrange(len(buf))
            del buf[pos : pos + rng.randint(1, 64)]
        elif choice < 0.85:
            pos = rng.randrange(len(buf) + 1)
            buf[pos:pos] = rng.randbytes(rng.randint(1, 32))
        else:
            other = rng.choice(pool)
            cut = rng.randrange(len(other) + 1)
            buf[rng.randrange(len(buf) + 1) :] = other[cut:]
    return bytes(buf)


def fuzz_one(rng: random.Random, pool: list[bytes], stats: Counter) -> None:
    fast, ext, magnet = rng.random() < 0.7, rng.random() < 0.8, rng.random() < 0.25
    wire = PeerWire(INFO_HASH, b"R" * 20, fast=rng.random() < 0.8, metadata_size=rng.choice([None, 20000]),
                    pex=rng.random() < 0.7, **({} if magnet else GEO))
    wire.send_handshake()
    if rng.random() < 0.5:  # unchoked: the peer's requests become outstanding, so cancels and floods count
        wire.send_unchoke()
    roll = rng.random()
    if roll < 0.1:
        stream = rng.randbytes(rng.randint(0, 200))  # no valid handshake at all
    elif roll < 0.3:
        stream = handshake(fast, ext) + rng.randbytes(rng.randint(0, 300))
    else:
        stream = handshake(fast, ext) + mutate(rng, b"".join(rng.sample(pool, rng.randint(1, 3))), pool)
        if rng.random() < 0.05:  # damage the handshake itself
            stream = mutate(rng, stream[:68], pool) + stream[68:]
    if not magnet:  # the receiver asked for these, so mutated blocks reach the deeper checks
        wire.our_requests.update(OUR_REQUESTS)
    wire.metadata_requests.update({0, 1})
    try:
        pos = 0
        while pos < len(stream):
            step = rng.choice([1, 3, 7, 64, 1000, 20000])
            wire.receive_data(stream[pos : pos + step])
            pos += step
            assert len(wire._in) <= MAX_BUFFERED, len(wire._in)
        if magnet:
            wire.set_geometry(**GEO)
        stats["clean"] += 1
    except ProtocolError as exc:
        stats["protocol_error"] += 1
        stats["why: " + "".join(c for c in str(exc) if not c.isdigit())[:50]] += 1
        try:
            wire.receive_data(b"x")
        except ProtocolError:
            pass
        else:
            raise AssertionError("a failed wire accepted more data") from None


def run(n: int, seed: int = 1) -> Counter:
    rng = random.Random(seed)
    pool = corpus()
    stats: Counter = Counter()
    for _ in range(n):
        fuzz_one(rng, pool, stats)  # anything but ProtocolError propagates and fails the run
    return stats


def test_fuzz_random_and_mutated_streams_raise_only_protocol_error():
    n = int(os.environ.get("WIRE_FUZZ_N", "30000"))
    stats = run(n, seed=int(os.environ.get("WIRE_FUZZ_SEED", "1")))
    assert stats["clean"] + stats["protocol_error"] == n
    assert stats["clean"] > n // 50 and stats["protocol_error"] > n // 2  # both paths exercised


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=400), st.booleans())
def test_fuzz_hypothesis_bytes_after_handshake(data, fast):
    wire = PeerWire(INFO_HASH, b"R" * 20, pex=True, **GEO)
    wire.send_handshake()
    try:
        wire.receive_data(handshake(fast, True) + data)
    except ProtocolError:
        pass


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    started = time.perf_counter()
    result = run(count, seed)
    elapsed = time.perf_counter() - started
    print(f"{count} inputs (seed {seed}) in {elapsed:.1f} s: {result['clean']} accepted cleanly, "
          f"{result['protocol_error']} ProtocolError, 0 other exceptions")
    reasons = sorted(((v, k[5:]) for k, v in result.items() if k.startswith("why: ")), reverse=True)
    print(f"{len(reasons)} distinct ProtocolError reasons (digits removed), most common:")
    for count_, reason in reasons[:25]:
        print(f"  {count_:6d}  {reason}")
