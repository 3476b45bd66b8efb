"""Interop: our PeerWire against WebTorrent's own wire (bittorrent-protocol + ut_metadata, run by node).

The JS peer is the code every browser WebTorrent client runs; it sets the DHT bit and, when asked, the
fast bit, so this checks the fast negotiation both ways as well as ut_metadata serving and fetching.
Loopback TCP only (the wire is a plain byte stream, so a data channel adds nothing here).

Needs node and the npm packages bittorrent-protocol and ut_metadata: found in tests/node/node_modules or in
the directory named by WIRE_JS_MODULES; skipped otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from i2ptorrent.wire import (
    BlockReceived, BlockRequested, ExtensionHandshake, HandshakeReceived, Interested, MetadataAssembler,
    MetadataPieceReceived, MetadataRequested, PeerWire, bdecode, bencode, metadata_piece,
)

BLOCK = 16384
PIECE_LENGTH = 2 * BLOCK
DEADLINE = 60.0  # generous, only to avoid hangs


def js_modules() -> Path | None:
    for candidate in (os.environ.get("WIRE_JS_MODULES"), Path(__file__).parent / "node" / "node_modules"):
        if candidate and all((Path(candidate) / pkg / "index.js").exists()
                             for pkg in ("bittorrent-protocol", "ut_metadata", "bencode")):
            return Path(candidate)
    return None


MODULES = js_modules()
pytestmark = pytest.mark.skipif(MODULES is None or shutil.which("node") is None,
                                reason="node with bittorrent-protocol + ut_metadata not installed")

# The JS peer: listens on 127.0.0.1, prints {"port"}, serves one connection, prints {"result"} and exits.
JS_PEER = r"""
import net from 'node:net'
import fs from 'node:fs'
import crypto from 'node:crypto'
import { pathToFileURL } from 'node:url'
const [mode, modules, fastArg, infoPath, dataPath] = process.argv.slice(2)
const load = async name => (await import(pathToFileURL(`${modules}/${name}/index.js`).href)).default
const Protocol = await load('bittorrent-protocol')
const utMetadata = await load('ut_metadata')
const bencode = await load('bencode')
const fast = fastArg === '1'
const peerId = crypto.randomBytes(20)
const sha1 = b => crypto.createHash('sha1').update(b).digest()
const finish = result => { console.log(JSON.stringify({ result })); process.exit(0) }
const server = net.createServer(socket => {
  const wire = new Protocol()
  socket.pipe(wire).pipe(socket)
  socket.on('error', () => {})
  const log = []
  for (const ev of ['choke', 'unchoke', 'interested', 'have', 'bitfield', 'have-all', 'have-none',
                    'allowed-fast', 'reject', 'keep-alive']) wire.on(ev, () => log.push(ev))
  if (mode === 'seed') {
    const info = fs.readFileSync(infoPath)
    const data = fs.readFileSync(dataPath)
    const numPieces = Math.ceil(data.length / PIECE)
    wire.use(utMetadata(info))
    wire.on('handshake', (infoHash) => {
      wire.handshake(infoHash, peerId, { dht: true, fast })
      if (wire.hasFast) wire.haveAll()
      else {
        const bits = new Uint8Array(Math.ceil(numPieces / 8))
        for (let i = 0; i < numPieces; i++) bits[i >> 3] |= 0x80 >> (i & 7)
        wire.bitfield(bits)
      }
    })
    wire.on('interested', () => wire.unchoke())
    let served = 0
    wire.on('request', (index, offset, length, cb) => {
      served++
      cb(null, data.subarray(index * PIECE + offset, index * PIECE + offset + length))
    })
    socket.on('close', () => finish({ served, hasFast: wire.hasFast, log }))
  } else {
    wire.use(utMetadata())
    wire.on('handshake', (infoHash) => {
      wire.handshake(infoHash, peerId, { dht: true, fast })
      wire.ut_metadata.fetch()
    })
    wire.ut_metadata.on('metadata', torrent => {
      const info = bencode.decode(torrent).info
      const pieceLength = info['piece length']
      const total = info.length
      const numPieces = Math.ceil(total / pieceLength)
      const pieces = Array.from({ length: numPieces }, () => null)
      const requestAll = () => {
        for (let i = 0; i < numPieces; i++) {
          const size = Math.min(pieceLength, total - i * pieceLength)
          const buf = new Uint8Array(size)
          let missing = Math.ceil(size / BLOCK)
          for (let off = 0; off < size; off += BLOCK) {
            wire.request(i, off, Math.min(BLOCK, size - off), (err, block) => {
              if (err) return finish({ error: String(err), log })
              buf.set(block, off)
              if (--missing === 0) {
                pieces[i] = Buffer.from(sha1(buf)).equals(Buffer.from(info.pieces.subarray(20 * i, 20 * i + 20)))
                if (pieces.every(p => p !== null)) {
                  finish({ verified: pieces.filter(Boolean).length, numPieces, hasFast: wire.hasFast,
                           infoHash: sha1(bencode.encode(info)).toString('hex'), log })
                }
              }
            })
          }
        }
      }
      wire.once('unchoke', requestAll)
      wire.interested()
    })
  }
})
const PIECE = 2 * 16384
const BLOCK = 16384
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })))
setTimeout(() => finish({ error: 'timeout' }), 60000).unref()
"""


@pytest.fixture(scope="module")
def torrent(tmp_path_factory) -> tuple[Path, Path, bytes, bytes]:
    """A v1 info dict (made here, 2 metadata pieces) and its data: 21 pieces of 32 KiB, the last short."""
    root = tmp_path_factory.mktemp("wt")
    data = os.urandom(20 * PIECE_LENGTH + 1234)
    hashes = b"".join(hashlib.sha1(data[i : i + PIECE_LENGTH]).digest() for i in range(0, len(data), PIECE_LENGTH))
    info = bencode({"length": len(data), "name": "file.bin", "piece length": PIECE_LENGTH, "pieces": hashes,
                    "comment-padding": "x" * 17000})  # > 16 KiB so ut_metadata needs two pieces
    (root / "info.bin").write_bytes(info)
    (root / "file.bin").write_bytes(data)
    (root / "peer.mjs").write_text(JS_PEER)
    return root, root / "peer.mjs", info, data


def start_js(script: Path, mode: str, fast: bool, *files: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(["node", str(script), mode, str(MODULES), "1" if fast else "0", *map(str, files)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise AssertionError(f"node peer did not start: {proc.stderr.read()}")
    return proc, json.loads(line)["port"]


def js_result(proc: subprocess.Popen) -> dict:
    try:
        out, err = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert lines, f"no result from node peer: {err}"
    return lines[-1]["result"]


def drive(sock: socket.socket, wire: PeerWire, on_event, done) -> None:
    """Pump bytes both ways, handing events to on_event, until done() or the deadline."""
    sock.settimeout(0.1)
    end = time.monotonic() + DEADLINE
    while not done():
        assert time.monotonic() < end, "timed out"
        out = wire.data_to_send()
        if out:
            sock.sendall(out)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        if not data:
            return
        for event in wire.receive_data(data):
            on_event(event)
    out = wire.data_to_send()
    if out:
        sock.sendall(out)


@pytest.mark.parametrize("js_fast", [True, False])
def test_we_fetch_metadata_and_pieces_from_webtorrent(torrent, js_fast):
    root, script, info, data = torrent
    proc, port = start_js(script, "seed", js_fast, root / "info.bin", root / "file.bin")
    try:
        info_hash = hashlib.sha1(info).digest()
        wire = PeerWire(info_hash, b"-IT0001-" + b"w" * 12)  # a magnet
        sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        wire.send_handshake()
        state: dict = {"blocks": {}, "assembler": None, "hs": None}

        def on_event(event) -> None:
            if isinstance(event, HandshakeReceived):
                state["hs"] = event
                wire.send_extension_handshake(client="i2ptorrent-test")
            elif isinstance(event, ExtensionHandshake):
                assert event.metadata_size == len(info) and "ut_metadata" in event.extensions
                state["assembler"] = MetadataAssembler(info_hash, event.metadata_size)
                for piece in state["assembler"].missing():
                    wire.send_metadata_request(piece)
            elif isinstance(event, MetadataPieceReceived):
                if state["assembler"].add(event.piece, event.data, event.total_size):
                    got = bdecode(state["assembler"].result())
                    wire.set_geometry(-(-got[b"length"] // got[b"piece length"]), got[b"piece length"],
                                      got[b"length"])
                    wire.send_interested()
            elif isinstance(event, BlockReceived):
                state["blocks"][(event.index, event.begin)] = event.data
            if not wire.peer_choking and wire.num_pieces and not wire.our_requests and not state["blocks"]:
                for i in range(wire.num_pieces):
                    for begin in range(0, wire.piece_size(i), BLOCK):
                        wire.send_request(i, begin, min(BLOCK, wire.piece_size(i) - begin))

        drive(sock, wire, on_event, lambda: len(state["blocks"]) == 41)
        sock.close()
        result = js_result(proc)
    finally:
        proc.kill()
        proc.wait()
    assert state["hs"].fast == js_fast and state["hs"].reserved[7] & 0x01  # WebTorrent sets DHT; ignored
    assert result["hasFast"] == js_fast and result["served"] == 41
    assert b"".join(state["blocks"][k] for k in sorted(state["blocks"])) == data


@pytest.mark.parametrize("js_fast", [True, False])
def test_webtorrent_fetches_metadata_and_pieces_from_us(torrent, js_fast):
    root, script, info, data = torrent
    proc, port = start_js(script, "leech", js_fast)
    try:
        info_hash = hashlib.sha1(info).digest()
        wire = PeerWire(info_hash, b"-IT0001-" + b"s" * 12, num_pieces=21, piece_length=PIECE_LENGTH,
                        total_length=len(data), metadata_size=len(info))
        sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        wire.send_handshake()
        served = []

        def on_event(event) -> None:
            if isinstance(event, HandshakeReceived):
                wire.send_extension_handshake(client="i2ptorrent-test")
                wire.send_have_all() if wire.fast else wire.send_bitfield(b"\xff\xff\xf8")
            elif isinstance(event, MetadataRequested):
                wire.send_metadata_data(event.piece, metadata_piece(info, event.piece))
            elif isinstance(event, Interested):
                wire.send_unchoke()
            elif isinstance(event, BlockRequested):
                start = event.index * PIECE_LENGTH + event.begin
                assert wire.send_piece(event.index, event.begin, data[start : start + event.length])
                served.append(event)

        drive(sock, wire, on_event, lambda: proc.poll() is not None)
        sock.close()
        result = js_result(proc)
    finally:
        proc.kill()
        proc.wait()
    assert "error" not in result, result
    assert result["hasFast"] == js_fast
    assert result["infoHash"] == info_hash.hex()  # WebTorrent verified the metadata we served
    assert result["verified"] == result["numPieces"] == 21 and len(served) == 41
