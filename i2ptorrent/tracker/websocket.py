"""The client side of RFC 6455 WebSocket, sans-I/O: bytes in -> events, calls -> bytes out.

The tracker client needs a WebSocket over a SAM stream (any ByteStream), which aiohttp's client cannot
be handed, so this small codec does the handshake and framing. Only what a tracker needs: text and
binary messages, fragmentation, ping/pong, close; no extensions. Every buffer is bounded.
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
    """The server broke the protocol (bad handshake, bad frame, message too large)."""


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


class WebSocketClient:
    """One client connection's state. Feed received bytes to `receive`, write `data_to_send()`."""

    def __init__(self, host: str, path: str = "/", *, max_message: int = 1024 * 1024,
                 headers: dict[str, str] | None = None) -> None:
        self.max_message = max_message
        self._key = base64.b64encode(os.urandom(16)).decode("ascii")
        self._buf = bytearray()
        self._out = bytearray()
        self._open = False
        self._closed = False
        self._frag: bytearray | None = None
        self._frag_text = False
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {self._key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self._out += ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")

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
        if isinstance(data, str):
            self._frame(OP_TEXT, data.encode("utf-8"))
        else:
            self._frame(OP_TEXT, data)

    def close(self, code: int = 1000) -> None:
        if self._open and not self._closed:
            self._frame(OP_CLOSE, struct.pack("!H", code))
            self._closed = True

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
        while True:
            event = self._next_frame()
            if event is None:
                break
            if event is not True:
                events.append(event)
        return events

    def _check_handshake(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or parts[1] != "101":
            raise WebSocketError(f"handshake refused: {lines[0][:200]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("sec-websocket-accept") != accept_value(self._key):
            raise WebSocketError("bad Sec-WebSocket-Accept")

    def _next_frame(self) -> Event | bool | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        fin, opcode = b0 & 0x80, b0 & 0x0F
        if b0 & 0x70:
            raise WebSocketError("reserved bits set")
        if b1 & 0x80:
            raise WebSocketError("masked frame from server")
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
        if len(buf) < pos + length:
            return None
        payload = bytes(buf[pos:pos + length])
        del buf[:pos + length]
        if opcode >= 0x8:
            if not fin or length > 125:
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

    def _frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        key = os.urandom(4)
        self._out += head + key + _mask(payload, key)
