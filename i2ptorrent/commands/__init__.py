"""The commands' bodies, one module per family; cli.py parses arguments and calls them.

    torrents.py  add, seed, create, info
    tracker.py   tracker (run, invite, allow, revoke, show)
    bridge.py    bridge
    demo.py      demo

The daemon's own commands live in daemon/ (server.py runs it, remote.py talks to it).
"""
