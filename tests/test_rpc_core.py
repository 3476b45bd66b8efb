"""The Transmission RPC core (sans-I/O) against a fake backend: every rule without a socket."""

from __future__ import annotations

import base64
import json
import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from i2ptorrent.daemon.prefs import SessionPrefs, TorrentPrefs, check
from i2ptorrent.daemon.rpc_core import (
    FIELDS, AddSource, FileChoice, FileView, RpcCore, RpcError, TorrentView, bitfield,
)

H1, H2 = "aa" * 20, "bb" * 20


def view(h: str, **kw: Any) -> TorrentView:
    base = TorrentView(info_hash=h, name=f"t-{h[:2]}", state="downloading", progress=0.25, pieces_done=1,
                       pieces_total=4, piece_size=16384, download_rate=1000.0, upload_rate=0.0, peers=2,
                       downloaded=16384, uploaded=0, total_size=65536, wanted_size=65536, have_size=16384,
                       save_path="/dl", magnet=f"magnet:?xt=urn:btih:{h}", added=1000.0)
    return replace(base, **kw)


class FakeBackend:
    def __init__(self) -> None:
        self.torrents: dict[str, TorrentView] = {H1: view(H1), H2: view(H2, state="paused", download_rate=0.0)}
        self.wanted: dict[str, list[bool]] = {H1: [True, True, True]}
        self.calls: list[tuple[Any, ...]] = []
        self.rates = (0, 0)
        self.ddir = "/dl"
        self.seed = SessionPrefs()

    def hashes(self) -> list[str]:
        return list(self.torrents)

    def view(self, h: str, detail: bool) -> TorrentView:
        self.calls.append(("view", h, detail))
        v = self.torrents[h]
        if detail:
            w = self.wanted.get(h, [])
            v = replace(v, files=tuple(FileView(f"f{i}", 100, 50, x, 0, 0) for i, x in enumerate(w)),
                        pieces_bits=bitfield([1, 0, 0, 1], 4))
        return v

    async def add(self, source: AddSource, ddir: str | None, paused: bool, files: FileChoice | None,
                  labels: list[str]):
        self.calls.append(("add", source, ddir, paused, files))
        h = "cc" * 20
        dup = h in self.torrents
        self.torrents[h] = view(h, state="paused" if paused else "metadata", prefs=TorrentPrefs(labels=labels))
        return self.torrents[h], dup

    def start(self, h: str) -> None:
        self.calls.append(("start", h))

    def stop(self, h: str) -> None:
        self.calls.append(("stop", h))

    async def remove(self, h: str, delete: bool) -> None:
        self.calls.append(("remove", h, delete))
        del self.torrents[h]

    async def verify(self, h: str) -> None:
        self.calls.append(("verify", h))

    def set_wanted(self, h: str, files: FileChoice) -> None:
        self.wanted[h] = files.apply(self.wanted[h])

    def set_prefs(self, h: str, changes: dict[str, Any]) -> None:
        v = self.torrents[h]
        checked = {k: check(k, x) for k, x in changes.items()}
        self.torrents[h] = replace(v, prefs=TorrentPrefs(**{**v.prefs.to_dict(), **checked}))

    async def set_location(self, h: str, path: str, move: bool) -> None:
        self.calls.append(("location", h, path, move))
        self.torrents[h] = replace(self.torrents[h], save_path=path)

    def session_prefs(self) -> SessionPrefs:
        return self.seed

    def set_session_prefs(self, changes: dict[str, Any]) -> None:
        self.seed = SessionPrefs(**{**self.seed.to_dict(), **{k: check(k, x) for k, x in changes.items()}})

    def limits(self) -> tuple[int, int]:
        return self.rates

    def set_limits(self, down: int | None, up: int | None) -> None:
        self.rates = (down or 0, up or 0)

    def download_dir(self) -> str:
        return self.ddir

    def set_download_dir(self, p: str) -> None:
        self.ddir = p

    def free_space(self, p: str) -> tuple[int, int]:
        return 123, 456

    def node(self) -> dict[str, Any]:
        return {"b32": "x.b32.i2p"}

    def close_session(self) -> None:
        self.calls.append(("close",))


@pytest.fixture
def core() -> RpcCore:
    return RpcCore(FakeBackend())


async def call(core: RpcCore, method: str, tag: int | None = 7, **args: Any) -> dict[str, Any]:
    req: dict[str, Any] = {"method": method, "arguments": args}
    if tag is not None:
        req["tag"] = tag
    return await core.handle(req, now=2000.0)


async def test_torrent_get_ids_are_stable_and_select_by_id_or_hash(core: RpcCore) -> None:
    r = await call(core, "torrent-get", fields=["id", "hashString", "status", "eta", "leftUntilDone"])
    assert r["result"] == "success" and r["tag"] == 7
    rows = r["arguments"]["torrents"]
    assert [(t["id"], t["hashString"]) for t in rows] == [(1, H1), (2, H2)]
    assert rows[0]["status"] == 4 and rows[1]["status"] == 0  # downloading, stopped
    assert rows[0]["eta"] == 50 and rows[0]["leftUntilDone"] == 49152  # 49152 B at 1000 B/s, rounded up
    r = await call(core, "torrent-get", ids=[2, H1.upper(), 99], fields=["id"])
    assert sorted(t["id"] for t in r["arguments"]["torrents"]) == [1, 2]


async def test_every_field_is_answered_in_both_formats(core: RpcCore) -> None:
    fields = sorted(FIELDS)
    r = await call(core, "torrent-get", fields=fields)
    assert r["result"] == "success"
    assert set(r["arguments"]["torrents"][0]) == set(fields)
    t = r["arguments"]["torrents"][0]
    assert t["wanted"] == [1, 1, 1] and t["files"][0] == {"bytesCompleted": 50, "length": 100, "name": "f0",
                                                         "beginPiece": 0, "endPiece": 1}
    assert base64.b64decode(t["pieces"]) == bytes([0b10010000])
    r = await call(core, "torrent-get", fields=["id", "name"], format="table")
    assert r["arguments"]["torrents"] == [["id", "name"], [1, "t-aa"], [2, "t-bb"]]


async def test_unknown_methods_fields_and_arguments_get_an_error_result(core: RpcCore) -> None:
    assert (await call(core, "blocklist-update"))["result"].startswith("method name not recognized")
    assert "unsupported field" in (await call(core, "torrent-get", fields=["id", "nosuch"]))["result"]
    assert "not supported" in (await call(core, "torrent-set", ids=[1], sequentialDownload=True))["result"]
    assert "not supported" in (await call(core, "torrent-set", ids=[1], nosuch=1))["result"]
    assert (await call(core, "torrent-set", ids=[1], downloadLimit=-5))["result"].startswith("downloadLimit")
    assert "seedRatioMode" in (await call(core, "torrent-set", ids=[1], seedRatioMode=7))["result"]
    assert "comma" in (await call(core, "torrent-set", ids=[1], labels=["a,b"]))["result"]
    assert "idle-seeding-limit" in (await call(core, "session-set", **{"idle-seeding-limit": "x"}))["result"]
    assert "not supported" in (await call(core, "session-set", **{"dht-enabled": True}))["result"]
    assert (await call(core, "session-set", **{"dht-enabled": False}))["result"] == "success"  # already so
    for bad in (None, [], "x", {"method": 5}, {"method": "torrent-get", "arguments": []}):
        r = await core.handle(bad, 0.0)
        assert r["result"] != "success"
    assert "fields" in (await call(core, "torrent-get", fields="id"))["result"]
    assert "URL" in (await call(core, "torrent-add", filename="http://example.com/x.torrent"))["result"]


async def test_add_start_stop_verify_remove_reach_the_backend(core: RpcCore) -> None:
    be: FakeBackend = core.backend  # type: ignore[assignment]
    r = await call(core, "torrent-add", filename="magnet:?xt=urn:btih:" + "cc" * 20, paused=True)
    added = r["arguments"]["torrent-added"]
    assert added["hashString"] == "cc" * 20 and added["id"] == 3
    r = await call(core, "torrent-add", metainfo=base64.b64encode(b"d4:infod").decode())
    assert r["arguments"]["torrent-duplicate"]["id"] == 3
    assert be.calls[1][1].metainfo == b"d4:infod"
    await call(core, "torrent-stop", ids=[3])
    await call(core, "torrent-start", ids=3)
    await call(core, "torrent-verify", ids=[H1])
    assert be.calls[2:] == [("stop", "cc" * 20), ("start", "cc" * 20), ("verify", H1)]
    assert "ids" in (await call(core, "torrent-remove"))["result"]  # never "all torrents" by omission
    await call(core, "torrent-remove", ids=[3], **{"delete-local-data": True})
    assert be.calls[-1] == ("remove", "cc" * 20, True)
    r = await call(core, "torrent-get", ids="recently-active", fields=["id"])
    assert r["arguments"]["removed"] == [3]


async def test_files_wanted_and_session_limits(core: RpcCore) -> None:
    be: FakeBackend = core.backend  # type: ignore[assignment]
    await call(core, "torrent-get", fields=["id"])
    assert (await call(core, "torrent-set", ids=[1], **{"files-unwanted": [0, 2]}))["result"] == "success"
    assert be.wanted[H1] == [False, True, False]
    await call(core, "torrent-set", ids=[1], **{"files-wanted": []})  # empty list: every file
    assert be.wanted[H1] == [True, True, True]
    assert "no file 9" in (await call(core, "torrent-set", ids=[1], **{"files-wanted": [9]}))["result"]
    r = await call(core, "session-set", **{"speed-limit-down": 300, "speed-limit-down-enabled": True})
    assert r["result"] == "success" and be.rates == (300_000, 0)
    s = (await call(core, "session-get"))["arguments"]
    assert s["speed-limit-down"] == 300 and s["speed-limit-down-enabled"] is True and s["rpc-version"] == 17
    await call(core, "session-set", **{"speed-limit-down-enabled": False, "download-dir": "/other"})
    assert be.rates == (0, 0) and be.ddir == "/other"
    assert (await call(core, "session-get", fields=["download-dir"]))["arguments"] == {"download-dir": "/other"}
    st = (await call(core, "session-stats"))["arguments"]
    assert st["torrentCount"] == 2 and st["pausedTorrentCount"] == 1 and st["downloadSpeed"] == 1000
    assert (await call(core, "free-space", path="/dl"))["arguments"]["size-bytes"] == 123
    assert (await call(core, "session-close"))["result"] == "success" and be.calls[-1] == ("close",)


# what stig (stig/client/aiotransmission/torrent.py DEPENDENCIES) asks for
STIG_FIELDS = ("id", "hashString", "name", "uploadRatio", "status", "percentDone", "metadataPercentComplete",
               "rateDownload", "rateUpload", "peersConnected", "trackerStats", "isPrivate", "downloadDir",
               "recheckProgress", "peersSendingToUs", "peersGettingFromUs", "dateCreated", "addedDate",
               "startDate", "activityDate", "doneDate", "eta", "manualAnnounceTime", "sizeWhenDone",
               "totalSize", "downloadedEver", "uploadedEver", "desiredAvailable", "corruptEver", "trackers",
               "peers", "fileStats", "files")


def test_the_fields_real_clients_ask_for_are_all_answered() -> None:
    from transmission_rpc.constants import get_torrent_arguments

    assert set(get_torrent_arguments(17)) <= set(FIELDS)  # transmission-rpc asks for all of these
    assert set(STIG_FIELDS) <= set(FIELDS)


def test_bitfield_matches_the_wire_layout() -> None:
    rng = random.Random(3)
    for count in (0, 1, 7, 8, 9, 1001):
        have = bytes(rng.randint(0, 1) for _ in range(count))
        expected = bytearray((count + 7) // 8)
        for i in range(count):
            if have[i]:
                expected[i >> 3] |= 0x80 >> (i & 7)  # piece 0 is the high bit of the first byte
        assert bitfield(have, count) == bytes(expected), count


async def test_a_failing_backend_is_a_result_not_a_crash(core: RpcCore) -> None:
    be: FakeBackend = core.backend  # type: ignore[assignment]

    async def boom(*a: Any) -> None:
        raise RpcError("disk on fire")

    be.verify = boom  # type: ignore[method-assign]
    r = await call(core, "torrent-verify", ids=[1], tag=None)
    assert r["result"] == "disk on fire" and "tag" not in r


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20)
methods = st.sampled_from(["torrent-get", "torrent-add", "torrent-set", "torrent-remove", "torrent-start",
                           "torrent-stop", "torrent-verify", "session-get", "session-set", "session-stats",
                           "free-space", "nosuch"])
argument_names = st.sampled_from(["ids", "fields", "format", "filename", "metainfo", "paused", "files-wanted",
                                  "files-unwanted", "delete-local-data", "speed-limit-down",
                                  "speed-limit-down-enabled", "download-dir", "path", "x"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=methods, args=st.dictionaries(argument_names, json_values, max_size=4), tag=json_values)
async def test_any_request_gets_an_answer_never_an_exception(method: str, args: dict, tag: Any) -> None:
    core = RpcCore(FakeBackend())
    reply = await core.handle({"method": method, "arguments": args, "tag": tag}, now=1.0)
    assert isinstance(reply["result"], str) and isinstance(reply["arguments"], dict)
    json.dumps(reply)  # always serialisable


async def test_per_torrent_limits_seed_limits_and_labels_are_set_and_reported(core: RpcCore) -> None:
    fields = ["id", "downloadLimit", "downloadLimited", "uploadLimit", "uploadLimited", "honorsSessionLimits",
              "seedRatioLimit", "seedRatioMode", "seedIdleLimit", "seedIdleMode", "labels", "isFinished"]
    before = (await call(core, "torrent-get", ids=[1], fields=fields))["arguments"]["torrents"][0]
    assert before == {"id": 1, "downloadLimit": 100, "downloadLimited": False, "uploadLimit": 100,
                      "uploadLimited": False, "honorsSessionLimits": True, "seedRatioLimit": 2.0,
                      "seedRatioMode": 0, "seedIdleLimit": 30, "seedIdleMode": 0, "labels": [],
                      "isFinished": False}
    r = await call(core, "torrent-set", ids=[1], downloadLimit=50, downloadLimited=True, uploadLimit=20,
                   uploadLimited=True, honorsSessionLimits=False, seedRatioLimit=1.5, seedRatioMode=1,
                   seedIdleLimit=10, seedIdleMode=2, labels=["films", " tv ", "films"])
    assert r["result"] == "success"
    rows = (await call(core, "torrent-get", fields=fields))["arguments"]["torrents"]
    assert rows[0] == {"id": 1, "downloadLimit": 50, "downloadLimited": True, "uploadLimit": 20,
                       "uploadLimited": True, "honorsSessionLimits": False, "seedRatioLimit": 1.5,
                       "seedRatioMode": 1, "seedIdleLimit": 10, "seedIdleMode": 2, "labels": ["films", "tv"],
                       "isFinished": False}
    assert rows[1]["downloadLimited"] is False and rows[1]["labels"] == []  # the other torrent untouched
    r = await call(core, "torrent-add", filename="magnet:?xt=urn:btih:" + "cc" * 20, labels=["new"])
    added = r["arguments"]["torrent-added"]["id"]
    got = await call(core, "torrent-get", ids=[added], fields=["labels"])
    assert got["arguments"]["torrents"] == [{"labels": ["new"]}]


async def test_session_seed_limits_are_set_and_reported(core: RpcCore) -> None:
    keys = ["seedRatioLimit", "seedRatioLimited", "idle-seeding-limit", "idle-seeding-limit-enabled"]
    s = (await call(core, "session-get", fields=keys))["arguments"]
    assert s == {"seedRatioLimit": 2.0, "seedRatioLimited": False, "idle-seeding-limit": 30,
                 "idle-seeding-limit-enabled": False}
    r = await call(core, "session-set", **{"seedRatioLimit": 0.5, "seedRatioLimited": True,
                                           "idle-seeding-limit": 5, "idle-seeding-limit-enabled": True})
    assert r["result"] == "success"
    s = (await call(core, "session-get", fields=keys))["arguments"]
    assert s == {"seedRatioLimit": 0.5, "seedRatioLimited": True, "idle-seeding-limit": 5,
                 "idle-seeding-limit-enabled": True}


async def test_set_location_reaches_the_backend_and_needs_an_absolute_path(core: RpcCore) -> None:
    be: FakeBackend = core.backend  # type: ignore[assignment]
    assert "absolute" in (await call(core, "torrent-set-location", ids=[1], location="rel"))["result"]
    assert "ids" in (await call(core, "torrent-set-location", location="/x"))["result"]
    r = await call(core, "torrent-set-location", ids=[1], location="/new", move=True)
    assert r["result"] == "success" and ("location", H1, "/new", True) in be.calls
    got = await call(core, "torrent-get", ids=[1], fields=["downloadDir"])
    assert got["arguments"]["torrents"] == [{"downloadDir": "/new"}]


async def test_a_view_is_taken_once_per_tick_and_a_change_takes_it_anew(core: RpcCore) -> None:
    be: FakeBackend = core.backend  # type: ignore[assignment]

    def views() -> int:
        n = sum(1 for c in be.calls if c[0] == "view")
        be.calls.clear()
        return n

    get = {"method": "torrent-get", "arguments": {"fields": ["id", "rateDownload"]}}
    await core.handle(get, 2000.1)
    await core.handle(get, 2000.9)  # a second client in the same tick
    assert views() == 2  # two torrents, each viewed once
    be.torrents[H1] = replace(be.torrents[H1], download_rate=5000.0)
    r = await core.handle(get, 2001.0)  # the next tick sees the engine's new rate
    assert views() == 2 and r["arguments"]["torrents"][0]["rateDownload"] == 5000
    await core.handle({"method": "torrent-stop", "arguments": {"ids": [1]}}, 2001.2)
    be.torrents[H1] = replace(be.torrents[H1], state="paused")
    r = await core.handle(get | {"arguments": {"fields": ["status"], "ids": [1]}}, 2001.3)
    assert r["arguments"]["torrents"] == [{"status": 0}]  # a change is seen at once, not a tick later
