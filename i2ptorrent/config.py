"""Settings for the command line and the daemon: defaults, then the TOML file, then the environment.

Command-line flags win over all three (cli.py applies them last). The file is small and optional; every
value is checked here so a typo is one clear ConfigError naming the key, never a traceback later.

    # ~/.config/i2ptorrent/config.toml
    data_dir = "~/.local/share/i2ptorrent"
    download_dir = "~/Downloads"

    [sam]
    host = "127.0.0.1"
    port = 7656
    profile = "network"        # "network" (a real router) or "local" (a private 0-hop test router)

    [tunnels]                  # override the profile's tunnel shape
    inbound_length = 3
    outbound_length = 3
    inbound_quantity = 3
    outbound_quantity = 3

    [limits]
    download_rate = 0          # bytes/s, 0 = unlimited
    upload_rate = 0
    max_peers = 50

Environment: I2PTORRENT_CONFIG, I2PTORRENT_SAM (host:port), I2PTORRENT_PROFILE, I2PTORRENT_DATA_DIR,
I2PTORRENT_DOWNLOAD_DIR, I2PTORRENT_DOWNLOAD_RATE, I2PTORRENT_UPLOAD_RATE, I2PTORRENT_MAX_PEERS,
I2PTORRENT_INBOUND_LENGTH (and the other three tunnel keys likewise).
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from i2ptorrent.loopback import is_loopback
from i2ptorrent.transport.router import LOCAL_ROUTER_OPTIONS, NETWORK_OPTIONS, ManagedRouter
from i2ptorrent.transport.sam import SAMAddress, SAMUnavailable, sam_answers

MAX_CONFIG_BYTES = 64 * 1024
PROFILES = {"network": NETWORK_OPTIONS, "local": LOCAL_ROUTER_OPTIONS}
TUNNEL_KEYS = ("inbound_length", "outbound_length", "inbound_quantity", "outbound_quantity")
TUNNEL_RANGES = {"length": (0, 7), "quantity": (1, 16)}


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it and says why."""


def default_data_dir(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "i2ptorrent"


def default_config_path(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "i2ptorrent" / "config.toml"


def parse_sam(value: str) -> SAMAddress:
    """'HOST:PORT' or 'PORT' -> SAMAddress. The SAM bridge must be on this machine (loopback)."""
    host, sep, port = value.strip().rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value.strip()
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"SAM address {value!r}: expected HOST:PORT") from None
    if not 0 < number < 65536:
        raise ConfigError(f"SAM address {value!r}: port out of range")
    if not is_loopback(host):
        raise ConfigError(f"SAM address {value!r}: the SAM bridge must be on loopback (127.0.0.1)")
    return SAMAddress(host, number)


@dataclass
class Config:
    data_dir: Path = field(default_factory=default_data_dir)
    download_dir: Path = field(default_factory=Path.cwd)
    sam: SAMAddress = field(default_factory=SAMAddress)
    profile: str = "network"
    tunnels: dict[str, int] = field(default_factory=dict)
    """Explicit tunnel settings; they override the profile's."""
    download_rate: int = 0
    upload_rate: int = 0
    max_peers: int = 50

    @property
    def session_options(self) -> dict[str, str]:
        """SAM SESSION CREATE options: the profile's, with the configured tunnel shape on top."""
        opts = dict(PROFILES[self.profile])
        for key, value in self.tunnels.items():
            opts[key.replace("_", ".")] = str(value)
        return opts


def _int(where: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{where}: {number} is outside {low}..{high}")
    return number


def _rate(where: str, value: object) -> int:
    from i2ptorrent.engine.ratelimit import MAX_RATE, MIN_RATE  # the engine's rule; it imports libtorrent

    number = _int(where, value, 0, MAX_RATE)
    if 0 < number < MIN_RATE:
        raise ConfigError(f"{where}: {number} bytes/s is too low: 0 (unlimited) or at least {MIN_RATE}")
    return number


def _path(where: str, value: object) -> Path:
    if not isinstance(value, str) or not value or "\0" in value:
        raise ConfigError(f"{where}: expected a path")
    return Path(value).expanduser()


def _profile(where: str, value: object) -> str:
    if value not in PROFILES:
        raise ConfigError(f"{where}: expected one of {', '.join(PROFILES)}, got {value!r}")
    return str(value)


def _apply_table(cfg: Config, doc: Mapping[str, object], where: str) -> None:
    """Apply a parsed TOML document; unknown keys are errors (a typo must not be silently ignored)."""
    known = {"data_dir", "download_dir", "sam", "tunnels", "limits"}
    for key in doc:
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {key!r}")
    if "data_dir" in doc:
        cfg.data_dir = _path(f"{where}: data_dir", doc["data_dir"])
    if "download_dir" in doc:
        cfg.download_dir = _path(f"{where}: download_dir", doc["download_dir"])
    sam = _table(doc, "sam", where, {"host", "port", "profile"})
    if "host" in sam or "port" in sam:
        host, port = sam.get("host", "127.0.0.1"), sam.get("port", 7656)
        cfg.sam = parse_sam(f"{host}:{_int(f'{where}: sam.port', port, 1, 65535)}")
    if "profile" in sam:
        cfg.profile = _profile(f"{where}: sam.profile", sam["profile"])
    for key, value in _table(doc, "tunnels", where, set(TUNNEL_KEYS)).items():
        low, high = TUNNEL_RANGES[key.split("_")[1]]
        cfg.tunnels[key] = _int(f"{where}: tunnels.{key}", value, low, high)
    limits = _table(doc, "limits", where, {"download_rate", "upload_rate", "max_peers"})
    if "download_rate" in limits:
        cfg.download_rate = _rate(f"{where}: limits.download_rate", limits["download_rate"])
    if "upload_rate" in limits:
        cfg.upload_rate = _rate(f"{where}: limits.upload_rate", limits["upload_rate"])
    if "max_peers" in limits:
        cfg.max_peers = _int(f"{where}: limits.max_peers", limits["max_peers"], 1, 1000)


def _table(doc: Mapping[str, object], name: str, where: str, keys: set[str]) -> Mapping[str, object]:
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    for key in table:
        if key not in keys:
            raise ConfigError(f"{where}: unknown setting {name}.{key}")
    return table


def _apply_env(cfg: Config, env: Mapping[str, str]) -> None:
    def get(name: str) -> str | None:
        value = env.get("I2PTORRENT_" + name)
        return value if value else None

    if (v := get("SAM")) is not None:
        cfg.sam = parse_sam(v)
    if (v := get("PROFILE")) is not None:
        cfg.profile = _profile("I2PTORRENT_PROFILE", v)
    if (v := get("DATA_DIR")) is not None:
        cfg.data_dir = _path("I2PTORRENT_DATA_DIR", v)
    if (v := get("DOWNLOAD_DIR")) is not None:
        cfg.download_dir = _path("I2PTORRENT_DOWNLOAD_DIR", v)
    for key in TUNNEL_KEYS:
        if (v := get(key.upper())) is not None:
            low, high = TUNNEL_RANGES[key.split("_")[1]]
            cfg.tunnels[key] = _int(f"I2PTORRENT_{key.upper()}", v, low, high)
    if (v := get("DOWNLOAD_RATE")) is not None:
        cfg.download_rate = _rate("I2PTORRENT_DOWNLOAD_RATE", v)
    if (v := get("UPLOAD_RATE")) is not None:
        cfg.upload_rate = _rate("I2PTORRENT_UPLOAD_RATE", v)
    if (v := get("MAX_PEERS")) is not None:
        cfg.max_peers = _int("I2PTORRENT_MAX_PEERS", v, 1, 1000)


def load_config(path: Path | None = None, env: Mapping[str, str] = os.environ) -> Config:
    """Defaults, then the config file (the given one must exist; the default one may not), then env."""
    explicit = path is not None or bool(env.get("I2PTORRENT_CONFIG"))
    if path is None:
        path = Path(env["I2PTORRENT_CONFIG"]).expanduser() if env.get("I2PTORRENT_CONFIG") \
            else default_config_path(env)
    cfg = Config(data_dir=default_data_dir(env))
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: config file not found") from None
        text = None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {getattr(exc, 'strerror', None) or exc}") from None
    if text is not None:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        _apply_table(cfg, doc, str(path))
    _apply_env(cfg, env)
    return cfg


@contextlib.asynccontextmanager
async def open_router(sam: SAMAddress | None, options: Mapping[str, str] | None = None,
                      ) -> AsyncIterator[tuple[SAMAddress, dict[str, str]]]:
    """(SAM address, session options) to build Clients on.

    With `sam`: that bridge (checked to answer, SAMUnavailable if not) and `options` (NETWORK_OPTIONS by
    default). With None: a private loopback-only i2pd started here and stopped on exit, with its options.
    """
    if sam is None:
        router = ManagedRouter()
        started = await router.start()
        try:
            yield started, dict(router.session_options)
        finally:
            await router.stop()
        return
    if not await sam_answers(sam):
        raise SAMUnavailable(f"no SAM bridge answers at {sam.host}:{sam.port}")
    yield sam, dict(options if options is not None else NETWORK_OPTIONS)
