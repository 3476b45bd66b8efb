"""SAM reply parsing and address helpers, with bytes alone."""

import base64
import hashlib
import os

import pytest
from hypothesis import given, strategies as st

from i2ptorrent.transport.sam_protocol import (
    SAMError,
    SAMProtocolError,
    b32_address,
    b32_from_hash,
    command,
    hash_from_b32,
    i2p_b64encode,
    is_liveness_answer,
    liveness_command,
    option_words,
    parse_peer_line,
    parse_reply,
    public_from_private,
    split_forwarded_datagram,
    version_tuple,
)


def fake_destination(cert_payload: bytes = b"\x00\x07\x00\x04") -> bytes:
    """A structurally valid destination: 384 key bytes and a key certificate (type 5)."""
    return os.urandom(384) + b"\x05" + len(cert_payload).to_bytes(2, "big") + cert_payload


def test_quoted_values_and_result() -> None:
    r = parse_reply(b'SESSION STATUS RESULT=I2P_ERROR MESSAGE="Unknown STYLE given"\n')
    assert (r.topic, r.kind, r.result) == ("SESSION", "STATUS", "I2P_ERROR")
    assert r.values["MESSAGE"] == "Unknown STYLE given"
    with pytest.raises(SAMError, match="I2P_ERROR.*Unknown STYLE") as err:
        r.check("SESSION", "STATUS")
    assert err.value.result == "I2P_ERROR"


def test_wrong_reply_kind_is_a_protocol_error() -> None:
    with pytest.raises(SAMProtocolError, match="expected 'STREAM STATUS'"):
        parse_reply(b"HELLO REPLY RESULT=OK VERSION=3.1\n").check("STREAM", "STATUS")


@pytest.mark.parametrize("line", [b"", b"\n", b"HTTP/1.1 400 Bad Request\r\n", b"HELLO\n", b"A B KEY\n",
                                  b'A B K="unterminated\n', b"\xff\xfe garbage\n", b"X" * 20000 + b"\n"])
def test_garbage_replies_raise_protocol_error(line: bytes) -> None:
    with pytest.raises(SAMProtocolError):
        parse_reply(line)


@given(st.binary(max_size=300))
def test_parse_reply_never_raises_anything_else(data: bytes) -> None:
    try:
        parse_reply(data)
    except SAMProtocolError:
        pass


def test_b32_is_base32_of_sha256_of_public_part() -> None:
    dest = fake_destination()
    expect = base64.b32encode(hashlib.sha256(dest).digest()).decode().rstrip("=").lower() + ".b32.i2p"
    assert b32_address(i2p_b64encode(dest)) == expect
    private = dest + os.urandom(32 + 64)
    assert public_from_private(i2p_b64encode(private)) == i2p_b64encode(dest)
    assert hash_from_b32(expect) == hashlib.sha256(dest).digest()
    assert b32_from_hash(hashlib.sha256(dest).digest()) == expect


@pytest.mark.parametrize("bad", ["", "abc.b32.i2p", "a" * 52 + ".i2p", "1" * 52 + ".b32.i2p"])
def test_hash_from_b32_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        hash_from_b32(bad)


def test_i2p_base64_alphabet() -> None:
    data = bytes([0xFB, 0xFF, 0xBF]) * 3
    text = i2p_b64encode(data)
    assert "-" in text or "~" in text
    assert "+" not in text and "/" not in text


def test_truncated_destination_rejected() -> None:
    with pytest.raises(ValueError, match="too short"):
        b32_address(i2p_b64encode(os.urandom(100)))
    dest = fake_destination(b"\x00" * 10)[:-3]
    with pytest.raises(ValueError, match="truncated"):
        b32_address(i2p_b64encode(dest))


def test_peer_line_with_ports_and_payload_split() -> None:
    dest = i2p_b64encode(fake_destination())
    got, opts = parse_peer_line(f"{dest} FROM_PORT=0 TO_PORT=0\n".encode())
    assert got == dest and opts == {"FROM_PORT": "0", "TO_PORT": "0"}
    sender, payload = split_forwarded_datagram(dest.encode() + b"\nhello\nworld")
    assert sender == dest and payload == b"hello\nworld"
    with pytest.raises(SAMProtocolError, match="no destination line"):
        split_forwarded_datagram(b"raw bytes")


@pytest.mark.parametrize("line", [b"not-base64!\n", b"STREAM STATUS RESULT=I2P_ERROR\n", b"\n"])
def test_bad_peer_line(line: bytes) -> None:
    with pytest.raises(SAMError):
        parse_peer_line(line)


def test_commands_quote_and_refuse_injection() -> None:
    assert command("NAMING", "LOOKUP", NAME="a b") == b'NAMING LOOKUP NAME="a b"\n'
    with pytest.raises(ValueError):
        command("NAMING", "LOOKUP", NAME="x\nSESSION CREATE")
    with pytest.raises(ValueError):
        option_words({"inbound.length": "0 outbound.length=9"})


# ---- liveness: SAM 3.2 PING, or a lookup of ME before it ----------------------------------------------


def test_ping_from_sam_3_2_on_and_a_lookup_of_me_before() -> None:
    assert liveness_command("3.2", "k1") == b"PING k1\n"
    assert liveness_command("3.3", "k1") == b"PING k1\n"
    # i2pd 2.45 negotiates 3.1 and closes the session's socket on a PING
    assert liveness_command("3.1", "k1") == b"NAMING LOOKUP NAME=ME\n"
    assert liveness_command("garbage", "k1") == b"NAMING LOOKUP NAME=ME\n"
    assert version_tuple("3.10") > version_tuple("3.2") > version_tuple("3.1")
    for bad in ("", "a b", "a\nb", "a=b"):
        with pytest.raises(ValueError):
            liveness_command("3.2", bad)


def test_only_the_matching_answer_counts() -> None:
    assert is_liveness_answer(parse_reply(b"PONG k1\n"), "3.2", "k1")
    assert not is_liveness_answer(parse_reply(b"PONG k2\n"), "3.2", "k1")  # an older ping's answer
    assert not is_liveness_answer(parse_reply(b"NAMING REPLY RESULT=OK NAME=ME VALUE=AAAA\n"), "3.2", "k1")
    assert is_liveness_answer(parse_reply(b"NAMING REPLY RESULT=OK NAME=ME VALUE=AAAA\n"), "3.1", "k1")
    assert not is_liveness_answer(parse_reply(b"NAMING REPLY RESULT=KEY_NOT_FOUND NAME=ME\n"), "3.1", "k1")
    assert not is_liveness_answer(parse_reply(b"PONG k1\n"), "3.1", "k1")
