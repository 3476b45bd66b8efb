"""Torrents as the engine sees them: magnets, .torrent files, and new v1 torrents made from local files.

libtorrent does the parsing and the hashing (it is fast and already checked against the spec); this module
bounds the input, turns every failure into MetainfoError, and keeps what libtorrent must never act on by
itself (trackers, peer addresses) in our own hands.
"""

from __future__ import annotations

import base64
import hashlib
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import libtorrent as lt

MAX_TORRENT_BYTES = 64 * 1024 * 1024
MAX_MAGNET_CHARS = 64 * 1024
MAX_INFO_BYTES = 32 * 1024 * 1024  # also the bound on metadata fetched from peers
# keep torrent_info from allocating without bound on hostile input
_TI_LIMITS = {"max_buffer_size": MAX_TORRENT_BYTES, "max_pieces": 0x200000, "max_decode_depth": 100,
              "max_decode_tokens": 3_000_000}


class MetainfoError(ValueError):
    """A magnet, .torrent or info dict that cannot be used; the message says why."""


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, '/'-separated, starting with the torrent's name for multi-file torrents
    size: int


@dataclass(frozen=True)
class Metainfo:
    """One torrent: always an info-hash; the info dict only once known (a magnet starts without it)."""

    info_hash: bytes  # v1, 20 bytes
    name: str
    trackers: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()  # candidate .b32.i2p addresses (magnet x.pe)
    info_bytes: bytes | None = field(default=None, repr=False)  # the raw bencoded info dict

    @property
    def has_metadata(self) -> bool:
        return self.info_bytes is not None

    def torrent_info(self) -> lt.torrent_info:
        if self.info_bytes is None:
            raise MetainfoError("no metadata yet (magnet)")
        return _torrent_info(b"d4:info" + self.info_bytes + b"e")

    @property
    def files(self) -> list[FileEntry]:
        fs = self.torrent_info().layout()
        return [FileEntry(fs.file_path(i).replace(os.sep, "/"), fs.file_size(i)) for i in range(fs.num_files())]

    @property
    def private(self) -> bool:
        """BEP 27: peers only from the tracker (no PEX). False while the info dict is unknown."""
        return self.info_bytes is not None and bool(self.torrent_info().priv())

    @property
    def total_size(self) -> int:
        return self.torrent_info().total_size()

    @property
    def piece_length(self) -> int:
        return self.torrent_info().piece_length()

    @property
    def num_pieces(self) -> int:
        return self.torrent_info().num_pieces()

    def with_info(self, info_bytes: bytes) -> "Metainfo":
        """This torrent with its info dict, checked against the info-hash (metadata from peers)."""
        if len(info_bytes) > MAX_INFO_BYTES:
            raise MetainfoError("info dict too large")
        if hashlib.sha1(info_bytes).digest() != self.info_hash:
            raise MetainfoError("info dict does not match the info-hash")
        ti = _torrent_info(b"d4:info" + info_bytes + b"e")
        return Metainfo(self.info_hash, ti.name(), self.trackers, self.peers, info_bytes)

    def magnet(self) -> str:
        return magnet_of(self)


def _torrent_info(data: bytes) -> lt.torrent_info:
    if len(data) > MAX_TORRENT_BYTES:
        raise MetainfoError(f"torrent larger than {MAX_TORRENT_BYTES} bytes")
    try:
        return lt.torrent_info(data, _TI_LIMITS)
    except (RuntimeError, ValueError, TypeError) as e:
        raise MetainfoError(f"invalid torrent: {e}") from None


def _from_torrent_info(ti: lt.torrent_info, trackers: tuple[str, ...] = ()) -> Metainfo:
    if not ti.info_hashes().has_v1():
        raise MetainfoError("v2-only torrent: the peer wire here speaks v1 only")
    info_bytes = bytes(ti.info_section())
    ih = ti.info_hashes().v1.to_bytes()
    if hashlib.sha1(info_bytes).digest() != ih:  # never trust a re-encode; this must hold for raw bytes
        raise MetainfoError("info section does not hash to the info-hash")
    return Metainfo(ih, ti.name(), trackers, (), info_bytes)


def _trackers_of(data: bytes) -> tuple[str, ...]:
    """announce-list (all tiers, in order) or announce, as text; entries that are not strings skipped."""
    try:
        top = lt.bdecode(data)
    except RuntimeError:
        return ()
    if not isinstance(top, dict):
        return ()
    urls: list[bytes] = []
    tiers = top.get(b"announce-list")
    if isinstance(tiers, list):
        for tier in tiers:
            if isinstance(tier, list):
                urls += [u for u in tier if isinstance(u, bytes)]
    if not urls and isinstance(top.get(b"announce"), bytes):
        urls.append(top[b"announce"])
    return tuple(dict.fromkeys(u.decode("utf-8", "replace") for u in urls))


def load_torrent(source: bytes | str | os.PathLike[str]) -> Metainfo:
    """A .torrent given as its bytes or as a path."""
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        try:
            if p.stat().st_size > MAX_TORRENT_BYTES:
                raise MetainfoError(f"{p}: larger than {MAX_TORRENT_BYTES} bytes")
            data = p.read_bytes()
        except OSError as e:
            raise MetainfoError(f"cannot read {p}: {e.strerror}") from None
    else:
        data = bytes(source)
    return _from_torrent_info(_torrent_info(data), _trackers_of(data))


def _b32_peer(value: str) -> str | None:
    """x.pe values we can dial: '<52 chars>.b32.i2p' with an optional (ignored) port."""
    host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    host = host.lower()
    if host.endswith(".b32.i2p") and len(host) == 52 + 8:
        try:
            base64.b32decode(host[:52].upper() + "====")
        except ValueError:
            return None
        return host
    return None


def parse_magnet(uri: str) -> Metainfo:
    """A magnet link: info-hash (v1 required), name, trackers, and the .b32 peers given in x.pe."""
    if not isinstance(uri, str) or len(uri) > MAX_MAGNET_CHARS:
        raise MetainfoError("magnet link missing or too long")
    if not uri.startswith("magnet:?"):
        raise MetainfoError("not a magnet link")
    try:
        atp = lt.parse_magnet_uri(uri)
    except RuntimeError as e:
        raise MetainfoError(f"invalid magnet link: {e}") from None
    if not atp.info_hashes.has_v1():
        raise MetainfoError("magnet has no v1 info-hash (btih)")
    query = urllib.parse.parse_qs(uri[len("magnet:?"):], keep_blank_values=False)
    peers = tuple(dict.fromkeys(p for v in query.get("x.pe", []) if (p := _b32_peer(v))))
    ih = atp.info_hashes.v1.to_bytes()
    return Metainfo(ih, atp.name or ih.hex(), tuple(atp.trackers), peers, None)


def magnet_of(meta: Metainfo, trackers: tuple[str, ...] | list[str] | None = None,
              peers: tuple[str, ...] | list[str] | None = None) -> str:
    """The magnet link for a torrent (its trackers unless others are given; x.pe for .b32 peers)."""
    parts = [("xt", "urn:btih:" + meta.info_hash.hex()), ("dn", meta.name)]
    parts += [("tr", t) for t in (meta.trackers if trackers is None else trackers)]
    parts += [("x.pe", p) for p in (meta.peers if peers is None else peers)]
    return "magnet:?" + "&".join(f"{k}={urllib.parse.quote(v, safe=':/')}" for k, v in parts)


def create_torrent(path: str | os.PathLike[str], trackers: list[str] | tuple[str, ...] = (),
                   piece_size: int | None = None, comment: str | None = None) -> bytes:
    """A v1 .torrent (bytes) of one file or a directory; piece_size None lets libtorrent choose."""
    p = Path(path).resolve()
    if not p.exists():
        raise MetainfoError(f"{p}: no such file or directory")
    if piece_size is not None and (piece_size < 16384 or piece_size & (piece_size - 1)):
        raise MetainfoError("piece size must be a power of two >= 16 KiB")
    try:
        files = lt.list_files(str(p))
        if sum(f.size for f in files) == 0:
            raise MetainfoError(f"{p}: nothing to share (empty)")
        ct = lt.create_torrent(files, piece_size or 0, lt.create_torrent.v1_only)
        for tier, url in enumerate(trackers):
            ct.add_tracker(url, tier)
        ct.set_creator("i2ptorrent")
        if comment:
            ct.set_comment(comment)
        lt.set_piece_hashes(ct, str(p.parent))
        return bytes(lt.bencode(ct.generate()))
    except RuntimeError as e:
        raise MetainfoError(f"cannot create a torrent of {p}: {e}") from None


def as_metainfo(source: "Metainfo | str | bytes | os.PathLike[str]") -> Metainfo:
    """What Engine.add accepts: a Metainfo, a magnet string, .torrent bytes, or a path to one."""
    if isinstance(source, Metainfo):
        return source
    if isinstance(source, str) and source.startswith("magnet:"):
        return parse_magnet(source)
    return load_torrent(source)
