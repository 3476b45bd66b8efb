"""SAM v3 as data: command lines out, reply lines in, I2P's base64 and .b32 addresses. No I/O here.

Kept apart from the asyncio client so that every reply a router can send is parsed in one place, bounded,
and tested with bytes alone.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

# I2P's base64 swaps '+/' for '-~' so destinations survive in URLs and file names.
_TO_I2P = bytes.maketrans(b"+/", b"-~")
_FROM_I2P = bytes.maketrans(b"-~", b"+/")

MAX_REPLY_LINE = 16384
"""A SAM reply line never needs more: a destination with its private keys is under 1 KiB."""

SIGNATURE_TYPE_ED25519 = 7


class SAMError(Exception):
    """The router refused a request (RESULT other than OK), or the SAM exchange failed."""

    def __init__(self, message: str, result: str = "I2P_ERROR") -> None:
        super().__init__(message)
        self.result = result
        self.message = message


class SAMProtocolError(SAMError):
    """The bridge sent something that is not a SAM reply: wrong service, garbage, or an oversized line."""

    def __init__(self, message: str) -> None:
        super().__init__(message, result="PROTOCOL_ERROR")


def i2p_b64encode(data: bytes) -> str:
    return base64.b64encode(data).translate(_TO_I2P).decode("ascii")


def i2p_b64decode(text: str) -> bytes:
    """Decode I2P base64; raises ValueError with a readable message for anything else."""
    try:
        raw = text.encode("ascii").translate(_FROM_I2P)
        return base64.b64decode(raw, validate=True)
    except (UnicodeEncodeError, ValueError) as exc:
        raise ValueError(f"not an I2P base64 string: {text[:40]!r}") from exc


def public_destination_length(dest: bytes) -> int:
    """Length of the public destination at the start of `dest` (a public or a private destination).

    A destination is 256 bytes of encryption key, 128 of signing key, then a certificate:
    one type byte, a two-byte length, and that many bytes.
    """
    if len(dest) < 387:
        raise ValueError(f"destination too short: {len(dest)} bytes (need at least 387)")
    cert_len = int.from_bytes(dest[385:387], "big")
    total = 387 + cert_len
    if len(dest) < total:
        raise ValueError("destination certificate is truncated")
    return total


def public_from_private(private_b64: str) -> str:
    """The public destination (base64) contained in a private destination (base64)."""
    raw = i2p_b64decode(private_b64)
    return i2p_b64encode(raw[: public_destination_length(raw)])


def b32_address(public_b64: str) -> str:
    """`<52 chars>.b32.i2p`: base32 of the SHA-256 of the public destination, computed locally."""
    raw = i2p_b64decode(public_b64)
    raw = raw[: public_destination_length(raw)]
    return base64.b32encode(hashlib.sha256(raw).digest()).decode("ascii").rstrip("=").lower() + ".b32.i2p"


def b32_from_hash(digest: bytes) -> str:
    """The .b32 address for a 32-byte destination hash (the compact peer format of I2P trackers)."""
    if len(digest) != 32:
        raise ValueError(f"a destination hash is 32 bytes, got {len(digest)}")
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower() + ".b32.i2p"


def hash_from_b32(address: str) -> bytes:
    """The 32-byte destination hash in a `.b32.i2p` address; ValueError if it is not one."""
    name = address.lower()
    if name.endswith(".i2p"):
        name = name[:-4]
    if not name.endswith(".b32") or len(name) != 56:
        raise ValueError(f"not a .b32.i2p address: {address!r}")
    try:
        digest = base64.b32decode(name[:52].upper() + "====")
    except ValueError as exc:
        raise ValueError(f"not a .b32.i2p address: {address!r}") from exc
    return digest


def is_b32(address: str) -> bool:
    try:
        hash_from_b32(address)
    except ValueError:
        return False
    return True


def _quote(value: str) -> str:
    # Only spaces need quotes: '=' inside a value is fine (base64 padding), and i2pd takes quotes literally
    # in DESTINATION=, so quoting a destination would break it.
    if any(c in value for c in ' "\n\r\t'):
        if '"' in value or "\n" in value:
            raise ValueError(f"SAM values cannot contain quotes or newlines: {value!r}")
        return f'"{value}"'
    return value


def command(*words: str, **options: str | int) -> bytes:
    """One SAM command line, e.g. command('STREAM', 'CONNECT', ID='a', DESTINATION=d)."""
    parts = list(words)
    for key, value in options.items():
        parts.append(f"{key}={_quote(str(value))}")
    return (" ".join(parts) + "\n").encode("ascii")


def option_words(options: dict[str, str]) -> list[str]:
    """i2cp/session options as SAM words; values are split on spaces by routers, so refuse them."""
    words = []
    for key, value in options.items():
        value = str(value)
        if not key or any(c in key for c in ' ="\n') or any(c in value for c in ' "\n'):
            raise ValueError(f"invalid SAM option {key!r}={value!r}")
        words.append(f"{key}={value}")
    return words


@dataclass(frozen=True)
class Reply:
    """A parsed reply line: 'STREAM STATUS RESULT=OK' -> topic STREAM, kind STATUS, values {RESULT: OK}."""

    topic: str
    kind: str
    values: dict[str, str] = field(default_factory=dict)

    @property
    def result(self) -> str | None:
        return self.values.get("RESULT")

    def check(self, topic: str, kind: str) -> "Reply":
        """Return self if it is the expected reply with RESULT=OK (or no RESULT), else raise."""
        if (self.topic, self.kind) != (topic, kind):
            raise SAMProtocolError(f"expected '{topic} {kind}' from the SAM bridge, got '{self.topic} {self.kind}'")
        result = self.result
        if result is not None and result != "OK":
            message = self.values.get("MESSAGE", "")
            raise SAMError(f"{topic} {kind}: {result}" + (f" ({message})" if message else ""), result)
        return self


PING_VERSION = (3, 2)
"""SAM 3.2 added `PING <text>` -> `PONG <text>`. i2pd 2.45 negotiates at most 3.1 and closes a session's
socket on a PING (measured: the session is gone), so before 3.2 the liveness check is a NAMING LOOKUP of
`ME`, which a SAM 3.0 bridge answers at once from the session's own destination."""


def version_tuple(version: str) -> tuple[int, ...]:
    """'3.1' -> (3, 1); anything unparsable counts as 3.0 (the oldest we speak)."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (3, 0)


def liveness_command(version: str, token: str) -> bytes:
    """What to send on a session's own socket to learn that the router still serves it: PING on 3.2+,
    a lookup of our own destination before. `token` (no spaces) names this check in the PONG."""
    if not token or any(c in token for c in ' "\n='):
        raise ValueError(f"bad ping token {token!r}")
    if version_tuple(version) >= PING_VERSION:
        return f"PING {token}\n".encode("ascii")
    return command("NAMING", "LOOKUP", NAME="ME")


def is_liveness_answer(reply: Reply, version: str, token: str) -> bool:
    """Whether `reply` answers `liveness_command(version, token)`: `PONG <token>` (parsed as topic PONG,
    kind token), or a NAMING REPLY with RESULT=OK for the lookup of ME."""
    if version_tuple(version) >= PING_VERSION:
        return (reply.topic, reply.kind) == ("PONG", token)
    return (reply.topic, reply.kind) == ("NAMING", "REPLY") and reply.result == "OK" and bool(reply.values.get("VALUE"))


def parse_reply(line: bytes) -> Reply:
    """Parse one reply line (with or without its newline); quoted values may contain spaces."""
    if len(line) > MAX_REPLY_LINE:
        raise SAMProtocolError(f"SAM reply line longer than {MAX_REPLY_LINE} bytes")
    try:
        text = line.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError:
        raise SAMProtocolError(f"SAM reply is not ASCII: {line[:60]!r}") from None
    if not text or "\n" in text:
        raise SAMProtocolError(f"malformed SAM reply: {text[:80]!r}")
    tokens = _tokenize(text)
    if len(tokens) < 2 or "=" in tokens[0] or "=" in tokens[1]:
        raise SAMProtocolError(f"malformed SAM reply: {text[:80]!r}")
    values: dict[str, str] = {}
    for token in tokens[2:]:
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise SAMProtocolError(f"malformed SAM reply value {token[:40]!r} in {text[:80]!r}")
        values[key] = value
    return Reply(tokens[0], tokens[1], values)


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch == " " and not quoted:
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(ch)
    if quoted:
        raise SAMProtocolError(f"unterminated quote in SAM reply: {text[:80]!r}")
    if current:
        tokens.append("".join(current))
    return tokens


def parse_peer_line(line: bytes) -> tuple[str, dict[str, str]]:
    """The line SAM writes before an accepted/forwarded stream's data: '<b64 dest>[ FROM_PORT=.. TO_PORT=..]'.

    Returns the peer's public destination (validated) and any options.
    """
    if len(line) > MAX_REPLY_LINE:
        raise SAMProtocolError("peer destination line too long")
    try:
        text = line.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError:
        raise SAMProtocolError("peer destination line is not ASCII") from None
    dest, *rest = text.split(" ")
    if dest.startswith("STREAM") or not dest:
        # Some routers report an error here (e.g. 'STREAM STATUS RESULT=I2P_ERROR') instead of a peer.
        raise SAMError(f"accept failed: {text[:120]}")
    try:
        raw = i2p_b64decode(dest)
        if public_destination_length(raw) != len(raw):
            raise ValueError("trailing bytes after the destination")
    except ValueError as exc:
        raise SAMProtocolError(f"invalid peer destination from SAM: {exc}") from None
    options = {}
    for word in rest:
        key, _, value = word.partition("=")
        options[key] = value
    return dest, options


def split_forwarded_datagram(packet: bytes) -> tuple[str, bytes]:
    """Split a repliable datagram that the router forwarded to our UDP port into (sender b64, payload)."""
    nl = packet.find(b"\n", 0, MAX_REPLY_LINE)
    if nl < 0:
        raise SAMProtocolError("forwarded datagram has no destination line")
    dest, _ = parse_peer_line(packet[:nl])
    return dest, packet[nl + 1 :]
