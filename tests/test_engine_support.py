"""Helpers shared by the engine's test modules (no tests here): content, digests, a lying peer."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from pathlib import Path

from i2ptorrent.engine import Metainfo
from i2ptorrent.transport.stream import ByteStream
from i2ptorrent.wire.connection import PeerWire
from i2ptorrent.wire.errors import ProtocolError
from i2ptorrent.wire.events import BlockRequested, HandshakeReceived, Interested


def make_files(root: Path, sizes: dict[str, int], seed: int = 1) -> Path:
    rnd = random.Random(seed)
    for rel, size in sizes.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rnd.randbytes(size))
    return root


def digest_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


async def lying_peer(stream: ByteStream, meta: Metainfo, served: list[int]) -> None:
    """A peer that claims every piece and answers every request with random bytes.

    It speaks the real wire (PeerWire) so only its data is wrong; `served` counts the blocks it sent.
    """
    wire = PeerWire(meta.info_hash, b"-XX0000-" + os.urandom(12), num_pieces=meta.num_pieces,
                    piece_length=meta.piece_length, total_length=meta.total_size)
    wire.send_handshake()
    try:
        await stream.write(wire.data_to_send())
        while True:
            data = await stream.read(65536)
            if not data:
                return
            for ev in wire.receive_data(data):
                if isinstance(ev, HandshakeReceived):
                    if wire.fast:
                        wire.send_have_all()
                    else:
                        wire.send_bitfield(bytes([0xFF]) * (meta.num_pieces // 8)
                                           + (bytes([(0xFF << (8 - meta.num_pieces % 8)) & 0xFF])
                                              if meta.num_pieces % 8 else b""))
                elif isinstance(ev, Interested):
                    wire.send_unchoke()
                elif isinstance(ev, BlockRequested):
                    if wire.send_piece(ev.index, ev.begin, os.urandom(ev.length)):
                        served.append(ev.index)
            out = wire.data_to_send()
            if out:
                await stream.write(out)
    except (ProtocolError, ConnectionError, OSError, asyncio.IncompleteReadError):
        return
    finally:
        await stream.close()
