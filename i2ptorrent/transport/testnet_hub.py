"""The testnet hub process: owns one TUN device in each router's namespace and forwards IPv4 packets
between them through a LinkScheduler (transport/testnet_links.py), which holds every delay/loss decision.

Run by transport/testnet.py as `python3 -m i2ptorrent.transport.testnet_hub CONFIG_JSON`, where the config
is {"tun": name, "nodes": [[netns_name, "198.18.x.y"], ...], "delay": s, "jitter": s, "loss": p}. It
opens no socket: only the TUN devices (each attached from inside its namespace with setns) and its pipes.
Control is line-based JSON on stdin, one answer line on stdout each:
  {"op": "links", "delay": 0.05, "jitter": 0, "loss": 0}   -> {"ok": true}
  {"op": "stats"}                                          -> {"ok": true, "sent": {i: bytes}, ...}
A packet to an address that is not one of the nodes is dropped: nothing can leave the namespaces.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import selectors
import socket
import struct
import sys
import time

from i2ptorrent.transport.testnet_links import LinkParams, LinkScheduler, ipv4_destination

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
READS_PER_WAKEUP = 64
MAX_PACKET = 65536


def setns(path: str) -> None:
    """Move the calling thread into the network namespace at `path` (sockets it opens from then on, and
    threads and processes it starts, live there)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def attach_tun(netns: str, name: str) -> int:
    """Open the persistent TUN `name` that lives in namespace `netns` (TUNSETIFF looks names up in the
    caller's namespace, so step in, attach, step back)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        setns(f"/run/netns/{netns}")
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    finally:
        setns(f"/proc/self/fd/{home}")
        os.close(home)
    return fd


class Hub:
    def __init__(self, config: dict) -> None:
        nodes = config["nodes"]
        self.fds = [attach_tun(ns, config["tun"]) for ns, _ in nodes]
        self.index_of_fd = {fd: i for i, fd in enumerate(self.fds)}
        self.index_of_addr = {socket.inet_aton(addr): i for i, (_, addr) in enumerate(nodes)}
        self.links = LinkScheduler(LinkParams(config.get("delay", 0.0), config.get("jitter", 0.0),
                                              config.get("loss", 0.0)))
        self.unroutable = 0
        self.write_failures = 0

    def control(self, line: str) -> dict:
        try:
            msg = json.loads(line)
            op = msg.get("op")
            if op == "links":
                self.links.set_all(LinkParams(float(msg.get("delay", 0)), float(msg.get("jitter", 0)),
                                              float(msg.get("loss", 0))))
                return {"ok": True}
            if op == "stats":
                return {"ok": True,
                        "sent": {i: c.bytes for i, c in self.links.sent.items()},
                        "received": {i: c.bytes for i, c in self.links.received.items()},
                        "dropped": sum(c.dropped for c in self.links.sent.values()),
                        "unroutable": self.unroutable, "write_failures": self.write_failures}
            return {"ok": False, "error": f"unknown op {op!r}"}
        except (ValueError, TypeError, AttributeError) as exc:
            return {"ok": False, "error": str(exc)}

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        for fd in self.fds:
            sel.register(fd, selectors.EVENT_READ)
        stdin = sys.stdin.fileno()
        os.set_blocking(stdin, False)
        sel.register(stdin, selectors.EVENT_READ)
        pending = b""
        print(json.dumps({"ok": True, "ready": True}), flush=True)
        while True:
            nxt = self.links.next_due()
            timeout = None if nxt is None else max(0.0, nxt - time.monotonic())
            for key, _ in sel.select(timeout):
                fd = key.fd
                if fd == stdin:
                    data = os.read(stdin, 65536)
                    if not data:
                        return  # our owner is gone: stop
                    pending += data
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        print(json.dumps(self.control(line.decode())), flush=True)
                    if len(pending) > 65536:
                        pending = b""
                    continue
                src = self.index_of_fd[fd]
                now = time.monotonic()
                for _ in range(READS_PER_WAKEUP):
                    try:
                        packet = os.read(fd, MAX_PACKET)
                    except BlockingIOError:
                        break
                    dst = self.index_of_addr.get(ipv4_destination(packet) or b"")
                    if dst is None or dst == src:
                        self.unroutable += 1
                        continue
                    self.links.submit(src, dst, packet, now)
            for dst, packet in self.links.due(time.monotonic()):
                try:
                    os.write(self.fds[dst], packet)
                except OSError:  # the router's queue is full or its namespace is going away
                    self.write_failures += 1


def main() -> None:
    Hub(json.loads(sys.argv[1])).run()


if __name__ == "__main__":
    main()
