"""The socket audit itself (tests/audit.py): it must catch what it is there to catch."""

from __future__ import annotations

import sys

import pytest

from audit import parse, run_traced

TRACE = "\n".join([
    '12 connect(5, {sa_family=AF_INET, sin_port=htons(7656), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
    '12 sendto(5, "HELLO VERSION MIN=3.0 MAX=3.3\\n", 30, 0, NULL, 0) = 30',
    '12 connect(6, {sa_family=AF_INET, sin_port=htons(25401), sin_addr=inet_addr("93.184.216.34")}, 16)'
    ' = -1 ENETUNREACH (Network is unreachable)',
    '12 sendto(7, "x", 1, 0, {sa_family=AF_INET6, sin6_port=htons(19302), '
    'sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:4860::1", &sin6_addr), sin6_scope_id=0}, 28) = 1',
    '12 bind(8, {sa_family=AF_INET, sin_port=htons(6881), sin_addr=inet_addr("0.0.0.0")}, 16) = 0',
    '12 bind(9, {sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}, 12) = 0',
    '12 connect(10, {sa_family=AF_UNIX, sun_path="/run/i2ptorrent/control.sock"}, 110) = 0',
    '13 sendmsg(11, {msg_name={sa_family=AF_INET6, sin6_port=htons(5), sin6_flowinfo=htonl(0), '
    'inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6_addr), sin6_scope_id=0}, msg_namelen=28}, 0) = 3',
    '13 sendto(12, "\\0\\1", 2, 0, {sa_family=AF_PACKET, sll_protocol=htons(ETH_P_ALL)}, 20) = 2',
    '13 sendto(13, "STREAM STATUS RESULT=OK HELLO VERSION"..., 40, 0, NULL, 0) = 40',
])


def test_audit_flags_foreign_addresses_and_counts_sam_connections() -> None:
    audit = parse(TRACE)
    assert audit.loopback == {"127.0.0.1", "::ffff:127.0.0.1"}
    assert audit.sam_connects == 1  # a HELLO at the start of a send, not one inside other text
    assert len(audit.non_loopback) == 4, audit.non_loopback
    assert any("93.184.216.34" in p for p in audit.non_loopback)  # a failed attempt counts too
    assert any("2001:4860::1" in p for p in audit.non_loopback)
    assert any("all interfaces" in p for p in audit.non_loopback)
    assert any("AF_PACKET" in p for p in audit.non_loopback)


def test_an_audit_that_saw_no_sam_traffic_fails() -> None:
    quiet = parse('12 bind(9, {sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}, 12) = 0')
    assert not quiet.non_loopback
    with pytest.raises(AssertionError, match="no SAM traffic"):
        quiet.check()


CHILD = """
import socket
a, b = socket.socketpair()
a.send(b"HELLO VERSION MIN=3.1 MAX=3.3\\n")  # what a SAM client sends first
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.connect(("192.0.2.7", 9))  # UDP connect only picks a route: no packet leaves
except OSError:
    pass
print("done")
"""


async def test_a_traced_process_is_seen_whole(tmp_path) -> None:
    """The real strace plumbing, not just the parser: a send and a foreign connect by a child process."""
    audit = await run_traced([sys.executable, "-c", CHILD], tmp_path / "trace.log", timeout=60)
    assert audit.returncode == 0 and "done" in audit.output
    assert audit.sam_connects == 1
    assert [p for p in audit.non_loopback if "192.0.2.7" in p]
    with pytest.raises(AssertionError, match="192.0.2.7"):
        audit.check()
