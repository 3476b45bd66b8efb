"""WebTorrent tracker messages (JSON over WebSocket): parsing and building, sans-I/O.

Every message from a peer passes through `parse_ws_message`, which either returns one small dataclass
or raises `TrackerProtocolError` with a text fit for a 'failure reason'. Hashes and ids stay as the
20-character "binary strings" the protocol uses (one char per byte, latin-1), so they are compared and
echoed without conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

ID_LENGTH = 20
MAX_SDP_LENGTH = 16 * 1024
EVENTS = ("started", "stopped", "completed", "update")


class TrackerProtocolError(ValueError):
    """Input that breaks the protocol; str(err) is sent back as the 'failure reason'."""


@dataclass(frozen=True, slots=True)
class Offer:
    offer_id: str
    sdp: str


@dataclass(frozen=True, slots=True)
class Announce:
    """A periodic or event announce, perhaps carrying WebRTC offers for random swarm members."""

    info_hash: str
    peer_id: str
    event: str  # one of EVENTS ('update' when the client sent none)
    left: float  # inf when unknown
    numwant: int
    offers: tuple[Offer, ...] = ()
    invite: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """A WebRTC answer to one relayed offer, routed to `to_peer_id` by `offer_id`."""

    info_hash: str
    peer_id: str
    to_peer_id: str
    offer_id: str
    sdp: str
    invite: str | None = None


@dataclass(frozen=True, slots=True)
class Scrape:
    info_hashes: tuple[str, ...]  # empty: all swarms (capped by the server)


Message = Announce | Answer | Scrape


@dataclass(slots=True)
class ParseContext:
    """What a failure reply may echo: the action and info_hash the peer sent, when readable."""

    action: str | None = None
    info_hash: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def is_binary_id(value: object) -> bool:
    """A 20-character string whose characters are all bytes (U+0000..U+00FF)."""
    return type(value) is str and len(value) == ID_LENGTH and (value.isascii() or max(value) <= "\xff")


def _binary_id(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not is_binary_id(value):
        raise TrackerProtocolError(f"invalid {key}")
    return value  # type: ignore[return-value]


def _sdp(obj: object, kind: str) -> str:
    if not isinstance(obj, dict) or obj.get("type") != kind:
        raise TrackerProtocolError(f"invalid {kind}")
    sdp = obj.get("sdp")
    if not isinstance(sdp, str) or not sdp or len(sdp) > MAX_SDP_LENGTH:
        raise TrackerProtocolError(f"invalid {kind} sdp")
    return sdp


def _number(value: object, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool):
        raise TrackerProtocolError("invalid number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and len(value) <= 24:
        try:
            return float(value)
        except ValueError:
            return default
    raise TrackerProtocolError("invalid number")


def _invite(obj: dict[str, Any]) -> str | None:
    invite = obj.get("invite")
    if invite is None:
        return None
    if not isinstance(invite, str) or not 0 < len(invite) <= 128:
        raise TrackerProtocolError("invalid invite")
    return invite


def parse_ws_message(data: str | bytes, *, max_size: int, max_offers: int, max_scrape: int) -> Message:
    """One text frame -> Announce, Answer or Scrape; TrackerProtocolError otherwise."""
    if len(data) > max_size:
        raise TrackerProtocolError("message too large")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise TrackerProtocolError("invalid JSON") from None
    if not isinstance(obj, dict):
        raise TrackerProtocolError("message is not an object")
    action = obj.get("action")
    if action == "announce":
        return _parse_announce(obj, max_offers)
    if action == "scrape":
        return _parse_scrape(obj, max_scrape)
    raise TrackerProtocolError("invalid action")


def failure_context(data: str | bytes, max_size: int) -> ParseContext:
    """For a failure reply to a bad message: the action and info_hash it named, when readable
    (the reference client ignores replies that do not carry the info_hash it is waiting on)."""
    ctx = ParseContext()
    if len(data) > max_size:
        return ctx
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return ctx
    if isinstance(obj, dict):
        action = obj.get("action")
        if action in ("announce", "scrape"):
            ctx.action = action
        if is_binary_id(obj.get("info_hash")):
            ctx.info_hash = obj["info_hash"]
    return ctx


def context_of(msg: Message) -> ParseContext:
    if isinstance(msg, Scrape):
        return ParseContext("scrape", msg.info_hashes[0] if len(msg.info_hashes) == 1 else None)
    return ParseContext("announce", msg.info_hash)


def _parse_announce(obj: dict[str, Any], max_offers: int) -> Announce | Answer:
    info_hash = _binary_id(obj, "info_hash")
    peer_id = _binary_id(obj, "peer_id")
    invite = _invite(obj)
    if obj.get("answer") is not None:
        to_peer_id = obj.get("to_peer_id")
        if not is_binary_id(to_peer_id):
            raise TrackerProtocolError("invalid `to_peer_id` (required with `answer`)")
        return Answer(info_hash=info_hash, peer_id=peer_id, to_peer_id=to_peer_id,
                      offer_id=_binary_id(obj, "offer_id"), sdp=_sdp(obj["answer"], "answer"),
                      invite=invite)
    event = obj.get("event")
    if event is None or event == "" or event == "empty":
        event = "update"
    if event not in EVENTS:
        raise TrackerProtocolError("invalid event")
    left = _number(obj.get("left"), float("inf"))
    if left != left:  # NaN counts as unknown, like the reference server
        left = float("inf")
    offers: list[Offer] = []
    raw_offers = obj.get("offers")
    if raw_offers is not None and event not in ("stopped", "completed"):
        if not isinstance(raw_offers, list):
            raise TrackerProtocolError("invalid offers")
        for item in raw_offers[:max_offers]:
            if not isinstance(item, dict):
                raise TrackerProtocolError("invalid offer")
            offers.append(Offer(offer_id=_binary_id(item, "offer_id"), sdp=_sdp(item.get("offer"), "offer")))
    # Like the reference server: a WebSocket peer gets exactly as many peers as it sent offers.
    return Announce(info_hash=info_hash, peer_id=peer_id, event=event, left=left,
                    numwant=len(offers), offers=tuple(offers), invite=invite)


def _parse_scrape(obj: dict[str, Any], max_scrape: int) -> Scrape:
    raw = obj.get("info_hash")
    if raw is None:
        return Scrape(info_hashes=())
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise TrackerProtocolError("invalid info_hash")
    if len(raw) > max_scrape:
        raise TrackerProtocolError("too many info_hash values")
    for value in raw:
        if not is_binary_id(value):
            raise TrackerProtocolError("invalid info_hash")
    return Scrape(info_hashes=tuple(dict.fromkeys(raw)))


# -- building replies (bytes of a JSON text frame) -------------------------------------------------

def dumps(obj: dict[str, Any]) -> bytes:
    """JSON as UTF-8 bytes; binary-string ids survive as their code points."""
    return orjson.dumps(obj)


def failure(reason: str, ctx: ParseContext | None = None) -> bytes:
    msg: dict[str, Any] = {"failure reason": reason}
    if ctx is not None:
        if ctx.action:
            msg["action"] = ctx.action
        if ctx.info_hash is not None:
            msg["info_hash"] = ctx.info_hash
    return dumps(msg)


def announce_reply(info_hash: str, interval: int, complete: int, incomplete: int) -> bytes:
    return dumps({"action": "announce", "interval": interval, "info_hash": info_hash,
                  "complete": complete, "incomplete": incomplete})


def offer_relay_tail(info_hash: str, from_peer_id: str, origin: dict[str, str]) -> bytes:
    """What every relayed offer of one announce shares; see `offer_relay`."""
    return b"," + dumps({"action": "announce", "peer_id": from_peer_id, "info_hash": info_hash, **origin})[1:]


def offer_relay(offer: Offer, tail: bytes) -> bytes:
    """The offer as the chosen peer sees it; the tail adds the offerer's ids and I2P address."""
    return b'{"offer":' + dumps({"type": "offer", "sdp": offer.sdp}) + b',"offer_id":' + dumps(offer.offer_id) + tail


def answer_relay(answer: Answer, origin: dict[str, str]) -> bytes:
    return dumps({"action": "announce", "answer": {"type": "answer", "sdp": answer.sdp},
                  "offer_id": answer.offer_id, "peer_id": answer.peer_id,
                  "info_hash": answer.info_hash, **origin})


def scrape_reply(files: dict[str, tuple[int, int, int]], min_interval: int) -> bytes:
    return dumps({"action": "scrape",
                  "files": {h: {"complete": c, "incomplete": i, "downloaded": d}
                            for h, (c, i, d) in files.items()},
                  "flags": {"min_request_interval": min_interval}})


# -- the client side: what a tracker sends us --------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Origin:
    """The other peer's I2P address as our tracker reports it (absent on other trackers)."""

    b32: str | None = None
    destination: str | None = None


@dataclass(frozen=True, slots=True)
class AnnounceReply:
    info_hash: str
    interval: int | None
    complete: int | None
    incomplete: int | None
    warning: str | None = None
    tracker_id: str | None = None


@dataclass(frozen=True, slots=True)
class SignalRelay:
    """An offer or answer another peer sent through the tracker."""

    info_hash: str
    peer_id: str
    offer_id: str
    sdp: str
    origin: Origin


class OfferRelay(SignalRelay):
    __slots__ = ()


class AnswerRelay(SignalRelay):
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class ScrapeReply:
    files: dict[str, tuple[int, int, int]]


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    info_hash: str | None = None
    action: str | None = None


ServerMessage = AnnounceReply | OfferRelay | AnswerRelay | ScrapeReply | Failure


def _opt_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != value or not -(2 ** 53) < value < 2 ** 53:
        return None
    return int(value)


def _origin(obj: dict[str, Any]) -> Origin:
    b32, dest = obj.get("i2p_b32"), obj.get("i2p_dest")
    return Origin(b32 if isinstance(b32, str) and len(b32) <= 80 else None,
                  dest if isinstance(dest, str) and len(dest) <= 1024 else None)


def parse_server_message(data: str | bytes, *, max_size: int = 256 * 1024) -> ServerMessage:
    """A tracker's text frame -> one of ServerMessage; TrackerProtocolError when it is not one."""
    if len(data) > max_size:
        raise TrackerProtocolError("message too large")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise TrackerProtocolError("invalid JSON") from None
    if not isinstance(obj, dict):
        raise TrackerProtocolError("message is not an object")
    action = obj.get("action")
    info_hash = obj.get("info_hash") if is_binary_id(obj.get("info_hash")) else None
    reason = obj.get("failure reason")
    if reason is not None:
        return Failure(str(reason)[:1024], info_hash, action if isinstance(action, str) else None)
    if action == "scrape":
        files_raw = obj.get("files")
        if not isinstance(files_raw, dict):
            raise TrackerProtocolError("invalid files")
        files: dict[str, tuple[int, int, int]] = {}
        for key, value in files_raw.items():
            if not is_binary_id(key) or not isinstance(value, dict):
                raise TrackerProtocolError("invalid files entry")
            files[key] = (_opt_int(value, "complete") or 0, _opt_int(value, "incomplete") or 0,
                          _opt_int(value, "downloaded") or 0)
        return ScrapeReply(files)
    if action != "announce":
        raise TrackerProtocolError("invalid action")
    if info_hash is None:
        raise TrackerProtocolError("invalid info_hash")
    if obj.get("offer") is not None or obj.get("answer") is not None:
        kind = "offer" if obj.get("offer") is not None else "answer"
        sdp = _sdp(obj[kind], kind)
        peer_id = _binary_id(obj, "peer_id")
        offer_id = _binary_id(obj, "offer_id")
        cls = OfferRelay if kind == "offer" else AnswerRelay
        return cls(info_hash, peer_id, offer_id, sdp, _origin(obj))
    interval = _opt_int(obj, "interval") or _opt_int(obj, "min interval")
    warning = obj.get("warning message")
    tracker_id = obj.get("tracker id")
    return AnnounceReply(info_hash, interval, _opt_int(obj, "complete"), _opt_int(obj, "incomplete"),
                         str(warning)[:1024] if warning is not None else None,
                         tracker_id if isinstance(tracker_id, str) and len(tracker_id) <= 256 else None)
