"""SDP for ICE-free data channels: what we write parses back, and whatever we receive is either a valid
description or an SdpError with a reason (never another exception)."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from i2ptorrent.transport.sdp import (
    CARRIER_DATAGRAM,
    CARRIER_STREAM,
    MAX_SDP_BYTES,
    Fingerprint,
    RtcDescription,
    SdpError,
    build_sdp,
    new_session_token,
    parse_sdp,
    parse_signal,
    to_signal,
)

B32 = base64.b32encode(os.urandom(32)).decode().rstrip("=").lower() + ".b32.i2p"
DGRAM = base64.b64encode(os.urandom(391)).decode().replace("+", "-").replace("/", "~")
FP = Fingerprint("sha-256", ":".join(f"{b:02X}" for b in os.urandom(32)))


def offer(**kw: object) -> RtcDescription:
    args: dict[str, object] = dict(type="offer", fingerprints=(FP,), setup="actpass", b32=B32,
                                   carriers=(CARRIER_STREAM, CARRIER_DATAGRAM), session=new_session_token(),
                                   datagram_dest=DGRAM)
    args.update(kw)
    return RtcDescription(**args)  # type: ignore[arg-type]


def test_offer_round_trip_keeps_every_field() -> None:
    d = offer()
    text = build_sdp(d)
    assert text.endswith("\r\n") and "a=candidate" not in text
    assert "m=application 9 UDP/DTLS/SCTP webrtc-datachannel" in text
    back = parse_sdp(text, "offer")
    assert back == d


def test_answer_round_trip_and_tracker_signal_shape() -> None:
    d = RtcDescription(type="answer", fingerprints=(FP,), setup="active", b32=B32, carriers=(CARRIER_STREAM,),
                       session=new_session_token())
    signal = to_signal(d)
    assert set(signal) == {"type", "sdp"} and signal["type"] == "answer"
    assert parse_signal(signal, "answer") == d


def test_aiortc_parses_our_sdp_as_a_data_channel_description() -> None:
    """A standard parser (aiortc's) reads our SDP: fingerprint, setup, sctp port and dummy ICE values."""
    from aiortc.sdp import SessionDescription

    d = offer()
    parsed = SessionDescription.parse(build_sdp(d))
    media = parsed.media[0]
    assert media.kind == "application" and media.sctp_port == 5000
    assert media.dtls.fingerprints[0].value == FP.value and media.dtls.role == "auto"
    assert media.ice.usernameFragment == d.ice_ufrag and not media.ice_candidates


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda s: s.replace("a=fingerprint", "a=x-nofp"), "fingerprint"),
        (lambda s: s + "a=candidate:1 1 udp 1 1.2.3.4 5 typ host\r\n", "ICE candidates are refused"),
        (lambda s: s + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n", "more than one m="),
        (lambda s: s.replace("v=0", "v=1"), "v=0"),
        (lambda s: s.replace("a=setup:actpass", "a=setup:sideways"), "a=setup"),
        (lambda s: s.replace(".b32.i2p", ".i2p"), "x-i2p-b32"),
        (lambda s: s.replace("a=sctp-port:5000", "a=sctp-port:99999"), "sctp-port"),
        (lambda s: s.replace("a=sctp-port:5000", "a=sctp-port:50x0"), "not a number"),
        (lambda s: s + "a=setup:active\r\n", "given twice"),
        (lambda s: s.replace("sam-stream sam-datagram", ""), "carrier"),
        (lambda s: s.replace("a=x-i2p-dgram:", "a=x-other:"), "x-i2p-dgram"),
        (lambda s: s.replace("UDP/DTLS/SCTP", "RTP/AVP"), "m= section"),
        (lambda s: s + "garbage\r\n", "not '<letter>=<value>'"),
        (lambda s: s + "a=x-pad:" + "x" * MAX_SDP_BYTES + "\r\n", "too large"),
        (lambda s: s.replace("s=-", "s=\u00e9"), "ASCII"),
        (lambda s: s + "a=x-big:" + "y" * 3000 + "\r\n", "too long"),
        (lambda s: s + "a=x:1\r\n" * 70, "too many lines"),
    ],
)
def test_malformed_sdp_gets_a_clear_error(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SdpError, match=reason):
        parse_sdp(mutate(build_sdp(offer())), "offer")


def test_answer_must_choose_one_carrier_and_a_role() -> None:
    text = build_sdp(offer())
    with pytest.raises(SdpError, match="actpass"):
        parse_sdp(text, "answer")
    with pytest.raises(SdpError, match="exactly one"):
        parse_sdp(text.replace("a=setup:actpass", "a=setup:active"), "answer")


def test_signal_shape_errors() -> None:
    with pytest.raises(SdpError, match="object"):
        parse_signal("v=0", "offer")
    with pytest.raises(SdpError, match="type"):
        parse_signal({"type": "answer", "sdp": build_sdp(offer())}, "offer")
    with pytest.raises(SdpError, match="sdp"):
        parse_signal({"type": "offer", "sdp": 5}, "offer")


def test_bytes_input_is_bounded_before_decoding() -> None:
    with pytest.raises(SdpError, match="too large"):
        parse_sdp(b"v=0\r\n" + b"\xff" * (MAX_SDP_BYTES + 1), "offer")
    with pytest.raises(SdpError, match="ASCII"):
        parse_sdp(b"v=0\r\n\xff", "offer")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=600) | st.binary(max_size=600))
def test_fuzz_arbitrary_input_only_raises_sdp_error(data: str | bytes) -> None:
    try:
        parse_sdp(data, "offer")
    except SdpError:
        pass


VALID = build_sdp(offer())


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_valid_sdp(data: st.DataObject) -> None:
    lines = VALID.split("\r\n")
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["drop", "dup", "flip", "insert"]))
        i = data.draw(st.integers(0, len(lines) - 1))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "flip" and lines[i]:
            j = data.draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:j] + data.draw(st.characters(max_codepoint=300)) + lines[i][j + 1:]
        else:
            lines.insert(i, data.draw(st.text(max_size=80)))
        if not lines:
            lines = [""]
    try:
        d = parse_sdp("\r\n".join(lines), "offer")
    except SdpError:
        return
    assert d.fingerprints and d.b32.endswith(".b32.i2p")  # whatever parses is complete and valid
