"""Config: defaults, then the TOML file, then the environment; every bad value is one ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from i2ptorrent.config import ConfigError, load_config, parse_sam
from i2ptorrent.transport.router import LOCAL_ROUTER_OPTIONS, NETWORK_OPTIONS
from i2ptorrent.transport.sam import SAMAddress


def test_defaults_follow_xdg(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "c"), "XDG_DATA_HOME": str(tmp_path / "d")}
    cfg = load_config(env=env)
    assert cfg.data_dir == tmp_path / "d" / "i2ptorrent"
    assert cfg.sam == SAMAddress("127.0.0.1", 7656)
    assert cfg.session_options == NETWORK_OPTIONS


def test_file_then_env_override(tmp_path: Path) -> None:
    conf = tmp_path / "c" / "i2ptorrent" / "config.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text('data_dir = "~/torrents-data"\n[sam]\nport = 7000\nprofile = "local"\n'
                    "[tunnels]\ninbound_quantity = 2\n[limits]\nupload_rate = 100000\nmax_peers = 9\n")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "c"), "HOME": str(tmp_path)}
    cfg = load_config(env=env)
    assert cfg.sam.port == 7000 and cfg.max_peers == 9 and cfg.upload_rate == 100000
    assert cfg.data_dir == Path("~/torrents-data").expanduser()
    assert cfg.session_options == {**LOCAL_ROUTER_OPTIONS, "inbound.quantity": "2"}
    cfg = load_config(env={**env, "I2PTORRENT_SAM": "127.0.0.1:7777", "I2PTORRENT_PROFILE": "network",
                           "I2PTORRENT_INBOUND_LENGTH": "1", "I2PTORRENT_DATA_DIR": str(tmp_path / "x")})
    assert cfg.sam.port == 7777 and cfg.data_dir == tmp_path / "x"
    assert cfg.session_options["inbound.length"] == "1" and cfg.session_options["inbound.quantity"] == "2"
    assert cfg.session_options["outbound.length"] == NETWORK_OPTIONS["outbound.length"]


@pytest.mark.parametrize("text, words", [
    ("[sam]\nport = 70000\n", "sam.port"),
    ("[sam]\nhost = \"10.0.0.1\"\n", "loopback"),
    ("[sam]\nprofile = \"fast\"\n", "sam.profile"),
    ("[tunnels]\ninbound_length = 9\n", "tunnels.inbound_length"),
    ("[tunnels]\nin_length = 1\n", "unknown setting tunnels.in_length"),
    ("colour = \"blue\"\n", "unknown setting 'colour'"),
    ("[limits]\nmax_peers = true\n", "limits.max_peers"),
    ("[limits]\nupload_rate = 100\n", "limits.upload_rate: 100 bytes/s is too low"),
    ("sam = 5\n", "[sam] must be a table"),
    ("data_dir = [\n", "config.toml"),
])
def test_bad_file_values_name_the_setting(tmp_path: Path, text: str, words: str) -> None:
    conf = tmp_path / "config.toml"
    conf.write_text(text)
    with pytest.raises(ConfigError, match=None) as info:
        load_config(conf, env={})
    assert words in str(info.value)


def test_bad_env_and_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="I2PTORRENT_MAX_PEERS"):
        load_config(env={"XDG_CONFIG_HOME": str(tmp_path), "I2PTORRENT_MAX_PEERS": "many"})
    with pytest.raises(ConfigError, match="not found"):
        load_config(env={"I2PTORRENT_CONFIG": str(tmp_path / "nope.toml")})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_parse_sam() -> None:
    assert parse_sam("7656") == SAMAddress("127.0.0.1", 7656)
    assert parse_sam("localhost:1") == SAMAddress("localhost", 1)
    assert parse_sam("[::1]:7656") == SAMAddress("::1", 7656)
    for bad in ("host", "127.0.0.1:0", "192.168.1.2:7656", "127.0.0.1:x"):
        with pytest.raises(ConfigError):
            parse_sam(bad)


def test_the_example_config_is_valid(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "config.toml"
    cfg = load_config(example, env={"HOME": str(tmp_path)})
    assert cfg.sam == SAMAddress("127.0.0.1", 7656) and cfg.max_peers == 50
    assert cfg.session_options["inbound.length"] == "3"
