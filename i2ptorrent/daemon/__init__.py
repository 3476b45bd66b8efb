"""`i2ptorrent daemon`: one Client kept running across commands and restarts, and the ways to drive it.

    protocol.py  the control protocol (one JSON line each way), no I/O; the socket's path
    registry.py  the saved torrent list the daemon restores at start
    prefs.py     what a user sets per torrent (speed and seed limits, labels) and the session's seed limits
    seeding.py   when a seed has given enough: the ratio and idle limits, sans-I/O
    server.py    the server half: the Daemon service and its faces (control socket, browser bridge, HTTP)
    web.py       the HTTP face on 127.0.0.1:9091: Transmission RPC, web page (static/index.html), /stream
    rpc_core.py  the Transmission RPC, sans-I/O, against a small Backend (backend.py: the Daemon's)
    guard.py     who may use the HTTP face: Host check, session id, basic auth, the stream key
    stream.py    /stream/<hash>/<file> with Range, reading pieces as they arrive
    remote.py    the client half: list/status/pause/resume/remove/limits/stop, and `add`/`seed` handing
                 their work to a running daemon

It uses the application layer (app/) and the Client; nothing below imports it.
"""
