"""The one tracker-URL rule (tracker/urls.py) and the one loopback check, with strings alone."""

from __future__ import annotations

import pytest

from i2ptorrent.loopback import is_loopback
from i2ptorrent.tracker.urls import TrackerURLError, parse_tracker_url

B32 = "a" * 52 + ".b32.i2p"


@pytest.mark.parametrize("url", [f"ws://{B32}/announce", f"wss://{B32}/announce", f"http://{B32}/announce",
                                 "http://tracker2.postman.i2p/announce.php", f"ws://{B32.upper()}/announce"])
def test_trackers_inside_i2p_pass(url: str) -> None:
    found = parse_tracker_url(url)
    assert found.inside_i2p and found.websocket == url.startswith("ws")


@pytest.mark.parametrize("url, why", [
    ("http://tracker.example.com/announce", "not an I2P address"),
    ("udp://tracker.opentrackr.org:1337/announce", "not an I2P address"),
    (f"udp://{B32}:6969/announce", "unsupported scheme"),
    (f"https://{B32}/announce", "unsupported scheme"),
    ("ws://127.0.0.1:8000/announce", "not an I2P address"),  # loopback only when the caller allows it
    ("http://[::1]:abc/announce", "not a URL"),
    ("announce", "not an I2P address"),
    ("http://i2p/announce", "not an I2P address"),
])
def test_everything_else_is_refused_with_a_reason(url: str, why: str) -> None:
    with pytest.raises(TrackerURLError, match=why):
        parse_tracker_url(url)


def test_loopback_trackers_only_when_allowed_and_with_a_port() -> None:
    found = parse_tracker_url("ws://127.0.0.1:8000/announce", allow_loopback=True)
    assert (found.host, found.port, found.inside_i2p) == ("127.0.0.1", 8000, False)
    assert parse_tracker_url("http://[::1]:8000/announce", allow_loopback=True).host == "::1"
    for url in ("ws://127.0.0.1/announce", "ws://127.0.0.2:8000/announce", "ws://10.0.0.1:8000/announce"):
        with pytest.raises(TrackerURLError):
            parse_tracker_url(url, allow_loopback=True)


def test_loopback_is_exactly_this_machines_names() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("127.0.0.2", "::ffff:127.0.0.1", "0.0.0.0", "", "localhost.", "10.0.0.1"))
