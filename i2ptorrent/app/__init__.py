"""The application layer: what every command and the daemon share, between the CLI and the Client.

    errors.py    exit codes, UserError, classify(exc): a library error as one line and an exit code
    runtime.py   StopSignal (Ctrl-C closes cleanly), the data directory's lock, the I2P router, a started
                 Client (running_client) and the browser bridge on it (start_bridge)
    output.py    Output: status lines and progress for people, results as text or --json
    progress.py  the progress line's formatting (pure) and drawing
    sources.py   magnets, info-hashes, .torrent paths, file selections and tracker URLs a user gives
    disk.py      a writable directory, room for a download, storage errors
    units.py     sizes, rates and durations as typed

It imports the Client and below, never the CLI, the commands or the daemon.
"""
