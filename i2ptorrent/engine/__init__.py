"""The torrent engine: libtorrent for storage and hash checks, our own peers for everything on the wire.

libtorrent 2.1.1 runs with no network at all (no listen socket, DHT, LSD, UPnP, NAT-PMP, outgoing
TCP/uTP, WebTorrent STUN; anonymous mode; settings.py). Peers are ByteStreams handed in by the caller, so
the engine never knows whether a SAM stream or a WebRTC channel carries them.

API:

    engine = Engine(data_dir, dial=None, own_addresses=(), max_peers=50, cache_bytes=16 MiB)
        # dial: async (b32) -> ByteStream, used to connect to a torrent's candidate addresses;
        # own_addresses: our .b32 (never dialled); resume data lives in data_dir/resume/
    await engine.start(); await engine.close()          # close saves resume data
    t = await engine.add(Metainfo | magnet str | .torrent bytes | path, save_path, selected_files=None)
        # selected_files: file indices or '/'-separated paths as in the torrent; None = all
    t.info_hash (20 bytes, v1), t.name, t.metainfo, t.magnet(peers=()), t.status() -> TorrentStatus
    await t.wait_complete()      # every wanted piece verified by libtorrent and flushed to the files
    await t.wait_metadata(); t.pause(); t.resume(); await t.save_resume()
    t.add_candidates([b32, ...])                        # peers from a tracker / PEX; dialled via `dial`
    await engine.remove(t)                              # downloaded files stay; resume data is deleted
    await engine.add_peer(t, stream) -> bool            # a stream we opened: we handshake
    await engine.handle_incoming(stream) -> bool        # accepted: routed by the handshake's info-hash,
                                                        # closed when the torrent is unknown
    engine.close(save_resume=False) is what a crash leaves behind: the next start re-checks the files
    instead of trusting older resume data, so a verified piece is never fetched again.

Memory is bounded per torrent: piece cache 16 MiB; pieces in progress (being assembled from blocks or
waiting for libtorrent's verdict) 32 MiB, or one piece where a piece is larger (picker.py: BUFFER_BUDGET);
4 MiB of unsent bytes per uploading peer. Measured: 48 MB peak RSS leeching 1 GiB.

Inside: swarm.py is the swarm as a sans-I/O core (bytes, storage verdicts and `now` in; actions.py out:
send, close, serve a block, write a piece, install metadata; every peer timer behind next_deadline() /
on_timer(now)), with picker.py, choker.py, metadata_fetch.py and peer_state.py under it. swarm_io.py
(AsyncSwarm) and peer.py (one stream's reader, writer and uploader tasks) are its asyncio adapter.
    TorrentStatus: name, info_hash (hex), state ('metadata'|'checking'|'downloading'|'seeding'|'paused'),
        progress, pieces_done, pieces_total, download_rate, upload_rate, peers, downloaded, uploaded,
        total_size, stats (SwarmStats: blocks_received, pieces_fetched, hash_failures, peers_banned, ...)

Metainfo helpers: parse_magnet(uri), load_torrent(path | bytes), create_torrent(path, trackers=(),
piece_size=None) -> bytes, magnet_of(meta, trackers=None, peers=None); bad input raises MetainfoError.
"""

from .engine import Engine, EngineError, Torrent, TorrentStatus
from .metainfo import (
    FileEntry, Metainfo, MetainfoError, as_metainfo, create_torrent, load_torrent, magnet_of, parse_magnet,
)
from .swarm import SwarmStats

__all__ = [
    "Engine", "EngineError", "FileEntry", "Metainfo", "MetainfoError", "SwarmStats", "Torrent", "TorrentStatus",
    "as_metainfo", "create_torrent", "load_torrent", "magnet_of", "parse_magnet",
]
