"""A data-channel offer shaped like Chromium's, for the bridge's bad-input tests."""

from __future__ import annotations

import secrets

from lab import VETH_ADDRESS


def chrome_offer(*, candidates: tuple[str, ...] = (f"{VETH_ADDRESS} 41234",), port: str = "41234",
                 fingerprint: str | None = None, extra: tuple[str, ...] = ()) -> str:
    fp = fingerprint or ":".join(f"{b:02X}" for b in secrets.token_bytes(32))
    lines = [
        "v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0",
        "a=extmap-allow-mixed", "a=msid-semantic: WMS",
        f"m=application {port} UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0",
        *(f"a=candidate:{i + 1} 1 udp 2113937151 {c} typ host generation 0" for i, c in enumerate(candidates)),
        f"a=ice-ufrag:{secrets.token_hex(2)}", f"a=ice-pwd:{secrets.token_hex(12)}", "a=ice-options:trickle",
        f"a=fingerprint:sha-256 {fp}", "a=setup:actpass", "a=mid:0", "a=sctp-port:5000",
        "a=max-message-size:262144", *extra,
    ]
    return "\r\n".join(lines) + "\r\n"
