"""What the browser and the bridge may learn of each other's addresses: SDP checks and candidate filters.

Sans-I/O. The bridge answers a browser's offer with a full aiortc RTCPeerConnection, whose ICE agent
would otherwise announce every interface of the machine and probe every candidate the browser names.
Both SDPs pass through here: the browser's offer keeps only candidates at addresses the bridge allows
(numeric, never an mDNS `.local` name, whose resolution would send multicast), and our answer names one
allowed local address only: one the browser named itself when it named any (the interface facing it, so
the page learns nothing new), else the first one aiortc ranks. Neither side learns or is sent to anything
else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

MAX_SDP_LINES = 400
MAX_CANDIDATES = 32

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressFilter = Callable[[IPAddress], bool]


class OfferError(ValueError):
    """The browser's offer is not a single data-channel offer we can answer; str(err) says why."""


def private_only(ip: IPAddress) -> bool:
    """Default ICE rule: loopback, private and link-local addresses only, never a global one."""
    return not ip.is_global and not ip.is_multicast and not ip.is_unspecified and not ip.is_reserved


def address_filter(allowed: Iterable[str] | None) -> AddressFilter:
    """An explicit allowlist of addresses (the bridge's --ice-address), or the private-only default."""
    if allowed is None:
        return private_only
    chosen = {ipaddress.ip_address(a) for a in allowed}
    return lambda ip: ip in chosen


def _candidate_address(line: str) -> str | None:
    """The connection address of an `a=candidate:` line (5th field), or None when malformed."""
    parts = line[len("a=candidate:"):].split()
    return parts[4] if len(parts) >= 8 and parts[6] == "typ" else None


def _allowed(address: str | None, allow: AddressFilter) -> bool:
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # a hostname: mDNS `.local` or worse; never resolved
    return allow(ip)


def candidate_addresses(sdp: str) -> list[IPAddress]:
    """The numeric addresses of an SDP's candidates, in order (names are skipped, never resolved)."""
    out: list[IPAddress] = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            address = _candidate_address(line)
            try:
                ip = ipaddress.ip_address(address or "")
            except ValueError:
                continue
            if ip not in out:
                out.append(ip)
    return out


def answer_address(answer_sdp: str, offered: Iterable[IPAddress], allow: AddressFilter) -> IPAddress | None:
    """The one address our answer may name: the first allowed one the browser offered too, else the first
    allowed one (a browser hiding its own behind mDNS names learns this one; it is the least we can say)."""
    ours = [ip for ip in candidate_addresses(answer_sdp) if allow(ip)]
    named = set(offered)
    return next((ip for ip in ours if ip in named), ours[0] if ours else None)


def filter_candidates(sdp: str, allow: AddressFilter) -> tuple[str, int]:
    """The SDP with every candidate at a disallowed address removed; also how many were kept."""
    out: list[str] = []
    kept = 0
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            if kept >= MAX_CANDIDATES or not _allowed(_candidate_address(line), allow):
                continue
            kept += 1
        out.append(line)
    return "\r\n".join(out) + "\r\n", kept


def check_offer(sdp: str) -> None:
    """Refuse anything but one SCTP data-channel section with a DTLS fingerprint (no media, no tricks)."""
    lines = sdp.splitlines()
    if len(lines) > MAX_SDP_LINES:
        raise OfferError("offer has too many lines")
    if not lines or lines[0] != "v=0":
        raise OfferError("offer is not an SDP")
    media = [ln for ln in lines if ln.startswith("m=")]
    if len(media) != 1:
        raise OfferError("offer must have exactly one media section")
    fields = media[0][2:].split()
    if fields[:1] != ["application"] or fields[2:4] != ["UDP/DTLS/SCTP", "webrtc-datachannel"]:
        raise OfferError("offer is not a WebRTC data-channel offer")
    if not any(ln.startswith("a=fingerprint:") for ln in lines):
        raise OfferError("offer has no DTLS fingerprint")
    if not any(ln.startswith("a=ice-ufrag:") for ln in lines) or not any(ln.startswith("a=ice-pwd:") for ln in lines):
        raise OfferError("offer has no ICE credentials")
    for ln in lines:
        if "\x00" in ln:
            raise OfferError("offer has control characters")
