"""RFC 6455 WebSocket, sans-I/O: bytes in -> events, calls -> bytes out. Both ends.

The tracker client needs a WebSocket over a SAM stream (any ByteStream), which aiohttp's client cannot
be handed; the tracker server parses frames itself so a message reaches the tracker core straight
from `data_received`, with no task switch per message (that switch is what bounds a Python tracker's
rate). Only what a tracker needs: text and binary messages, fragmentation, ping/pong, close; no
extensions. Every buffer is bounded.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HANDSHAKE = 16 * 1024

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WebSocketError(Exception):
    """The other end broke the protocol (bad handshake, bad frame, message too large)."""


@dataclass(frozen=True, slots=True)
class Opened:
    pass


@dataclass(frozen=True, slots=True)
class Message:
    data: bytes
    text: bool


@dataclass(frozen=True, slots=True)
class Closed:
    code: int
    reason: str


Event = Opened | Message | Closed


def _mask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if n == 0:
        return data
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(n, "little")


def accept_value(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


def frame_header(opcode: int, length: int, masked: bool = False) -> bytes:
    """Header of one final frame; the server's frames are unmasked, the client's masked."""
    bit = 0x80 if masked else 0
    if length < 126:
        return bytes((0x80 | opcode, bit | length))
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, bit | 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, bit | 127, length)


class _Framing:
    """Frame parsing and building shared by both ends; `client` decides who masks."""

    def __init__(self, max_message: int, client: bool) -> None:
        self.max_message = max_message
        self._client = client
        self._buf = bytearray()
        self._out = bytearray()
        self._open = False
        self._closed = False
        self._frag: bytearray | None = None
        self._frag_text = False

    @property
    def is_open(self) -> bool:
        return self._open and not self._closed

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def send(self, data: bytes | str) -> None:
        if not self.is_open:
            raise WebSocketError("not open")
        self._frame(OP_TEXT, data.encode("utf-8") if isinstance(data, str) else data)

    def close(self, code: int = 1000) -> None:
        if self._open and not self._closed:
            self._frame(OP_CLOSE, struct.pack("!H", code))
            self._closed = True

    def _frames(self, events: list[Event]) -> list[Event]:
        while True:
            event = self._next_frame()
            if event is None:
                break
            if event is not True:
                events.append(event)
            if isinstance(event, Closed):
                self._buf.clear()  # nothing after a close counts
                break
        return events

    def _next_frame(self) -> Event | bool | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        fin, opcode = b0 & 0x80, b0 & 0x0F
        if b0 & 0x70:
            raise WebSocketError("reserved bits set")
        masked = bool(b1 & 0x80)
        if masked == self._client:
            raise WebSocketError("masked frame from server" if self._client else "unmasked frame from client")
        length, pos = b1 & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, pos = struct.unpack_from("!H", buf, 2)[0], 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, pos = struct.unpack_from("!Q", buf, 2)[0], 10
        if length > self.max_message:
            raise WebSocketError("frame too large")
        key = b""
        if masked:
            if len(buf) < pos + 4:
                return None
            key, pos = bytes(buf[pos:pos + 4]), pos + 4
        if len(buf) < pos + length:
            return None
        payload = bytes(buf[pos:pos + length])
        del buf[:pos + length]
        if masked:
            payload = _mask(payload, key)
        if opcode >= 0x8:
            return self._control(opcode, fin, payload)
        if opcode == OP_CONT:
            if self._frag is None:
                raise WebSocketError("continuation without a start")
            self._frag += payload
            if len(self._frag) > self.max_message:
                raise WebSocketError("message too large")
            if not fin:
                return True
            data, self._frag = bytes(self._frag), None
            return Message(data, self._frag_text)
        if opcode not in (OP_TEXT, OP_BINARY):
            raise WebSocketError("unknown opcode")
        if self._frag is not None:
            raise WebSocketError("new message inside a fragmented one")
        if not fin:
            self._frag, self._frag_text = bytearray(payload), opcode == OP_TEXT
            return True
        return Message(payload, opcode == OP_TEXT)

    def _control(self, opcode: int, fin: int, payload: bytes) -> Event | bool:
        if not fin or len(payload) > 125:
            raise WebSocketError("bad control frame")
        if opcode == OP_PING:
            if not self._closed:
                self._frame(OP_PONG, payload)
            return True
        if opcode == OP_PONG:
            return True
        if opcode == OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            if not self._closed:
                self._frame(OP_CLOSE, payload[:2])
                self._closed = True
            return Closed(code, payload[2:].decode("utf-8", "replace"))
        raise WebSocketError("unknown control opcode")

    def _frame(self, opcode: int, payload: bytes) -> None:
        if self._client:
            key = os.urandom(4)
            self._out += frame_header(opcode, len(payload), masked=True) + key + _mask(payload, key)
        else:
            self._out += frame_header(opcode, len(payload))
            self._out += payload


class WebSocketClient(_Framing):
    """One client connection. Feed received bytes to `receive`, write `data_to_send()`."""

    def __init__(self, host: str, path: str = "/", *, max_message: int = 1024 * 1024,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(max_message, client=True)
        self._key = base64.b64encode(os.urandom(16)).decode("ascii")
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {self._key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self._out += ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")

    def receive(self, data: bytes) -> list[Event]:
        """Bytes from the server -> events. Raises WebSocketError on a protocol violation."""
        self._buf += data
        events: list[Event] = []
        if not self._open:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HANDSHAKE:
                    raise WebSocketError("handshake too long")
                return events
            self._check_handshake(bytes(self._buf[:end]))
            del self._buf[:end + 4]
            self._open = True
            events.append(Opened())
        return self._frames(events)

    def _check_handshake(self, head: bytes) -> None:
        status, headers = parse_head(head)
        parts = status.split(" ", 2)
        if len(parts) < 2 or parts[1] != "101":
            raise WebSocketError(f"handshake refused: {status[:200]!r}")
        if headers.get("sec-websocket-accept") != accept_value(self._key):
            raise WebSocketError("bad Sec-WebSocket-Accept")


class WebSocketServer(_Framing):
    """The server side after `accept_upgrade`: feed bytes to `receive`, write `data_to_send()`."""

    def __init__(self, max_message: int) -> None:
        super().__init__(max_message, client=False)
        self._open = True

    def receive(self, data: bytes) -> list[Event]:
        self._buf += data
        return self._frames([])


def parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    """An HTTP head (without the blank line) -> (first line, lowercase header dict)."""
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise WebSocketError("malformed header line")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers


@dataclass(frozen=True, slots=True)
class Upgrade:
    """A valid WebSocket upgrade request: where to, its headers, and the 101 reply to send."""

    path: str
    headers: dict[str, str]
    reply: bytes


def accept_upgrade(head: bytes) -> Upgrade | None:
    """The request head -> Upgrade if it is a WebSocket upgrade (WebSocketError if a broken one);
    None when it is some other request (served as plain HTTP)."""
    request_line, headers = parse_head(head)
    parts = request_line.split(" ")
    if len(parts) != 3 or headers.get("upgrade", "").lower() != "websocket":
        return None
    method, target, _version = parts
    key = headers.get("sec-websocket-key", "")
    if method != "GET" or "upgrade" not in headers.get("connection", "").lower():
        raise WebSocketError("bad upgrade request")
    if headers.get("sec-websocket-version") != "13":
        raise WebSocketError("unsupported WebSocket version")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except ValueError:
        raise WebSocketError("bad Sec-WebSocket-Key") from None
    reply = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Accept: {accept_value(key)}\r\n\r\n").encode("ascii")
    return Upgrade(target, headers, reply)
