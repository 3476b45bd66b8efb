"""SDP for ICE-free data channels between I2P peers: build and parse, strict and bounded. No I/O.

An offer or answer is ordinary WebRTC data-channel SDP (one `m=application ... UDP/DTLS/SCTP
webrtc-datachannel` section) so that a WebTorrent tracker relays it unchanged as `{type, sdp}`. What ICE
would normally negotiate is replaced by I2P: `a=x-i2p-*` attributes name the peer's destination, the
carriers it accepts and a session token that ties a carrier connection to this exchange.

Dummy `a=ice-ufrag`/`a=ice-pwd` values are always written (random, valid syntax) because browsers and
most SDP parsers refuse a session description without them; they are never used. No `a=candidate` line
is ever written, and one in a received description is refused: nothing here may trigger ICE.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Literal

MAX_SDP_BYTES = 8192
"""Two full destinations and a fingerprint fit in ~1.6 KB; anything far bigger is not ours."""
MAX_LINES = 64
MAX_LINE = 2048
MAX_FINGERPRINTS = 4
MAX_CARRIERS = 4

CARRIER_STREAM = "sam-stream"
CARRIER_DATAGRAM = "sam-datagram"
CARRIER_STRIPE = "sam-stripe"
"""Several SAM streams to the same peer, packets numbered and put back in order (transport/stripe.py)."""
KNOWN_CARRIERS = (CARRIER_STRIPE, CARRIER_STREAM, CARRIER_DATAGRAM)

SdpType = Literal["offer", "answer"]
Setup = Literal["actpass", "active", "passive"]

_FINGERPRINT_BYTES = {"sha-256": 32, "sha-384": 48, "sha-512": 64}
_B32_RE = re.compile(r"^[a-z2-7]{52}\.b32\.i2p$")
_B64_RE = re.compile(r"^[A-Za-z0-9~-]{516,1024}={0,2}$")
_TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")
_ICE_CHARS_RE = re.compile(r"^[A-Za-z0-9+/]+$")
_CARRIER_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class SdpError(ValueError):
    """A session description we refuse, with the reason in plain words."""


@dataclass(frozen=True)
class Fingerprint:
    algorithm: str  # 'sha-256' | 'sha-384' | 'sha-512'
    value: str  # upper-case hex pairs joined by ':'


@dataclass(frozen=True)
class RtcDescription:
    """What an I2P peer says about itself in an offer or answer."""

    type: SdpType
    fingerprints: tuple[Fingerprint, ...]
    setup: Setup
    b32: str  # the peer's identity: its stream destination as <52>.b32.i2p
    carriers: tuple[str, ...]  # offer: accepted, preferred first; answer: exactly the chosen one
    session: str  # 32 hex chars chosen by the offerer, echoed by the answerer
    sctp_port: int = 5000
    max_message_size: int = 262144
    datagram_dest: str | None = None  # full base64 of the peer's datagram destination
    ice_ufrag: str = field(default_factory=lambda: secrets.token_hex(4))
    ice_pwd: str = field(default_factory=lambda: secrets.token_hex(12))

    def __post_init__(self) -> None:
        _validate(self)


def new_session_token() -> str:
    return secrets.token_hex(16)


def _validate(d: RtcDescription) -> None:
    if d.type not in ("offer", "answer"):
        raise SdpError(f"type must be 'offer' or 'answer', not {d.type!r}")
    if not d.fingerprints:
        raise SdpError("no DTLS fingerprint (a=fingerprint) given")
    if len(d.fingerprints) > MAX_FINGERPRINTS:
        raise SdpError(f"too many fingerprints ({len(d.fingerprints)} > {MAX_FINGERPRINTS})")
    for fp in d.fingerprints:
        _check_fingerprint(fp)
    if d.setup not in ("actpass", "active", "passive"):
        raise SdpError(f"a=setup must be actpass, active or passive, not {d.setup!r}")
    if d.type == "answer" and d.setup == "actpass":
        raise SdpError("an answer must choose a=setup:active or passive, not actpass")
    if not _B32_RE.match(d.b32):
        raise SdpError(f"a=x-i2p-b32 is not a <52 chars>.b32.i2p address: {d.b32[:70]!r}")
    if not d.carriers:
        raise SdpError("no carrier offered (a=x-i2p-carriers)")
    if len(d.carriers) > MAX_CARRIERS or len(set(d.carriers)) != len(d.carriers):
        raise SdpError(f"bad carrier list {d.carriers[:8]!r}: at most {MAX_CARRIERS}, no repeats")
    for c in d.carriers:
        if not _CARRIER_RE.match(c):
            raise SdpError(f"bad carrier name {c[:40]!r}")
    if d.type == "answer" and len(d.carriers) != 1:
        raise SdpError("an answer must name exactly one chosen carrier")
    if not _TOKEN_RE.match(d.session):
        raise SdpError("a=x-i2p-session must be 32 lower-case hex characters")
    if not 1 <= d.sctp_port <= 65535:
        raise SdpError(f"a=sctp-port out of range: {d.sctp_port}")
    if not 0 <= d.max_message_size <= 2**32 - 1:
        raise SdpError(f"a=max-message-size out of range: {d.max_message_size}")
    if d.datagram_dest is not None and not _B64_RE.match(d.datagram_dest):
        raise SdpError("a=x-i2p-dgram is not a base64 I2P destination")
    if CARRIER_DATAGRAM in d.carriers and d.datagram_dest is None:
        raise SdpError("carrier sam-datagram needs a=x-i2p-dgram (the datagram destination)")
    if not (4 <= len(d.ice_ufrag) <= 256 and _ICE_CHARS_RE.match(d.ice_ufrag)):
        raise SdpError("a=ice-ufrag must be 4-256 ice-chars")
    if not (22 <= len(d.ice_pwd) <= 256 and _ICE_CHARS_RE.match(d.ice_pwd)):
        raise SdpError("a=ice-pwd must be 22-256 ice-chars")


def _check_fingerprint(fp: Fingerprint) -> None:
    size = _FINGERPRINT_BYTES.get(fp.algorithm)
    if size is None:
        raise SdpError(f"unsupported fingerprint algorithm {fp.algorithm[:20]!r} (sha-256/384/512)")
    parts = fp.value.split(":")
    if len(parts) != size or not all(re.fullmatch(r"[0-9A-F]{2}", p) for p in parts):
        raise SdpError(f"malformed {fp.algorithm} fingerprint: want {size} upper-case hex pairs joined by ':'")


def build_sdp(d: RtcDescription) -> str:
    """The SDP text for `d`, CRLF line ends as RFC 4566 wants."""
    lines = [
        "v=0",
        f"o=- {int.from_bytes(bytes.fromhex(d.session[:14]), 'big')} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic: WMS",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        f"a=ice-ufrag:{d.ice_ufrag}",
        f"a=ice-pwd:{d.ice_pwd}",
    ]
    lines += [f"a=fingerprint:{fp.algorithm} {fp.value}" for fp in d.fingerprints]
    lines += [
        f"a=setup:{d.setup}",
        "a=mid:0",
        f"a=sctp-port:{d.sctp_port}",
        f"a=max-message-size:{d.max_message_size}",
        f"a=x-i2p-b32:{d.b32}",
        f"a=x-i2p-carriers:{' '.join(d.carriers)}",
        f"a=x-i2p-session:{d.session}",
    ]
    if d.datagram_dest is not None:
        lines.append(f"a=x-i2p-dgram:{d.datagram_dest}")
    return "\r\n".join(lines) + "\r\n"


_SINGLE_ATTRS = {
    "setup", "sctp-port", "max-message-size", "x-i2p-b32", "x-i2p-carriers", "x-i2p-session",
    "x-i2p-dgram", "ice-ufrag", "ice-pwd", "mid",
}
_IGNORED_ATTRS = {
    "group", "msid-semantic", "ice-options", "extmap-allow-mixed", "sendrecv", "end-of-candidates",
}


def parse_sdp(text: str | bytes, expect: SdpType) -> RtcDescription:
    """Parse an offer or answer from an I2P peer; raises SdpError saying what is wrong.

    Strict on what matters (one data-channel section, fingerprints, setup, our attributes, no ICE
    candidates), tolerant of the harmless session-level lines browsers add.
    """
    if isinstance(text, bytes):
        if len(text) > MAX_SDP_BYTES:
            raise SdpError(f"SDP too large ({len(text)} > {MAX_SDP_BYTES} bytes)")
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError as exc:
            raise SdpError("SDP is not ASCII text") from exc
    if not isinstance(text, str):
        raise SdpError(f"SDP must be text, not {type(text).__name__}")
    if len(text) > MAX_SDP_BYTES:
        raise SdpError(f"SDP too large ({len(text)} > {MAX_SDP_BYTES} bytes)")
    if not text.isascii():
        raise SdpError("SDP is not ASCII text")
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) > MAX_LINES:
        raise SdpError(f"SDP has too many lines ({len(lines)} > {MAX_LINES})")
    if not lines or lines[0] != "v=0":
        raise SdpError("SDP must start with v=0")

    attrs: dict[str, str] = {}
    fingerprints: list[Fingerprint] = []
    media_seen = 0
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE:
            raise SdpError(f"line {number} too long ({len(line)} > {MAX_LINE})")
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SdpError(f"line {number} is not '<letter>=<value>': {line[:60]!r}")
        if "\r" in line or any(ord(ch) < 32 for ch in line):
            raise SdpError(f"line {number} contains control characters")
        kind, value = line[0], line[2:]
        if kind == "m":
            media_seen += 1
            if media_seen > 1:
                raise SdpError("more than one m= section; only one data-channel section is accepted")
            if value.split() != ["application", "9", "UDP/DTLS/SCTP", "webrtc-datachannel"]:
                raise SdpError(f"m= section is not 'application 9 UDP/DTLS/SCTP webrtc-datachannel': {value[:60]!r}")
            continue
        if kind != "a":
            continue  # o= s= t= c= b= are not used without ICE
        name, _, arg = value.partition(":")
        if name == "candidate":
            raise SdpError("ICE candidates are refused: I2P peers signal with a=x-i2p-* only")
        if name == "fingerprint":
            algorithm, _, fp = arg.strip().partition(" ")
            if len(fingerprints) >= MAX_FINGERPRINTS:
                raise SdpError(f"too many fingerprints (> {MAX_FINGERPRINTS})")
            fingerprints.append(Fingerprint(algorithm.lower(), fp.strip().upper()))
        elif name in _SINGLE_ATTRS:
            if name in attrs:
                raise SdpError(f"a={name} given twice")
            attrs[name] = arg.strip()
        elif name in _IGNORED_ATTRS or name.startswith("x-"):
            continue
        elif name in ("sctpmap",):
            raise SdpError("a=sctpmap (old draft SCTP SDP) is not supported; use a=sctp-port")
        # anything else (e.g. rtcp-mux, extmap) is harmless for a data channel: ignored
    if media_seen != 1:
        raise SdpError("no m=application data-channel section")
    for required in ("setup", "x-i2p-b32", "x-i2p-carriers", "x-i2p-session", "sctp-port"):
        if required not in attrs:
            raise SdpError(f"missing a={required}")
    ice = {k.replace("-", "_"): attrs[k] for k in ("ice-ufrag", "ice-pwd") if k in attrs}
    return RtcDescription(
        type=expect,
        fingerprints=tuple(fingerprints),
        setup=attrs["setup"],  # type: ignore[arg-type]  # checked by _validate
        b32=attrs["x-i2p-b32"],
        carriers=tuple(attrs["x-i2p-carriers"].split()),
        session=attrs["x-i2p-session"],
        sctp_port=_int(attrs["sctp-port"], "sctp-port"),
        max_message_size=_int(attrs.get("max-message-size", "65536"), "max-message-size"),
        datagram_dest=attrs.get("x-i2p-dgram"),
        **ice,
    )


def _int(text: str, name: str) -> int:
    if not text.isdigit() or len(text) > 10:
        raise SdpError(f"a={name} is not a number: {text[:20]!r}")
    return int(text)


def parse_signal(message: object, expect: SdpType) -> RtcDescription:
    """Parse `{type, sdp}` as the WebTorrent tracker relays it (already JSON-decoded)."""
    if not isinstance(message, dict):
        raise SdpError("signal must be an object {type, sdp}")
    if message.get("type") != expect:
        raise SdpError(f"signal type must be {expect!r}, got {str(message.get('type'))[:20]!r}")
    sdp = message.get("sdp")
    if not isinstance(sdp, str):
        raise SdpError("signal has no sdp string")
    return parse_sdp(sdp, expect)


def to_signal(d: RtcDescription) -> dict[str, str]:
    """`{type, sdp}` exactly as a WebTorrent tracker carries offers and answers."""
    return {"type": d.type, "sdp": build_sdp(d)}
