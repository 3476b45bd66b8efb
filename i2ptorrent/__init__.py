"""i2ptorrent: a WebTorrent-compatible torrent client that lives entirely inside I2P."""

__version__ = "0.1.0"
