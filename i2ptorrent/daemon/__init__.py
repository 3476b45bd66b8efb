"""`i2ptorrent daemon`: one Client kept running across commands and restarts, and the ways to drive it.

    protocol.py  the control protocol (one JSON line each way), no I/O; the socket's path
    registry.py  the saved torrent list the daemon restores at start
    server.py    the server half: the Daemon service and its faces (control socket, browser bridge; the
                 Transmission RPC, web page and /stream attach there too)
    remote.py    the client half: list/status/pause/resume/remove/limits/stop, and `add`/`seed` handing
                 their work to a running daemon

It uses the application layer (app/) and the Client; nothing below imports it.
"""
