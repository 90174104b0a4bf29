"""Length-prefixed framing between host and sandbox: a JSON header plus raw blobs.

A message is ``u32 length`` + JSON header; the header's ``blobs`` lists the sizes
of the raw byte blobs that follow (image pixels travel this way, unencoded). The
reader enforces size limits because the other side may be running hostile code.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Sequence
from typing import Any

__all__ = [
    "MAX_BLOB",
    "MAX_HEADER",
    "ProtocolError",
    "recv_frame",
    "recv_message",
    "send_message",
    "send_raw",
]

_LENGTH = struct.Struct(">I")
MAX_HEADER = 64 * 1024 * 1024
MAX_BLOB = 256 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not a well-formed message, or hung up."""


def send_message(sock: socket.socket, header: dict[str, Any], blobs: Sequence[bytes] = ()) -> None:
    """Send ``header`` and ``blobs`` as one message."""
    head = json.dumps({**header, "blobs": [len(b) for b in blobs]}).encode()
    sock.sendall(_LENGTH.pack(len(head)) + head)
    for blob in blobs:
        sock.sendall(blob)


def _read_exact(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise ProtocolError("peer closed the connection")
        got += n
    return bytes(buffer)


def recv_message(
    sock: socket.socket, max_header: int = MAX_HEADER, max_blob: int = MAX_BLOB
) -> tuple[dict[str, Any], list[bytes]]:
    """Read one message; raise :class:`ProtocolError` on anything malformed."""
    try:
        (length,) = _LENGTH.unpack(_read_exact(sock, _LENGTH.size))
        if length > max_header:
            raise ProtocolError(f"header of {length} bytes exceeds {max_header}")
        header = json.loads(_read_exact(sock, length))
    except TimeoutError:
        raise
    except (OSError, ValueError) as exc:
        raise ProtocolError(f"unreadable message: {exc}") from None
    sizes = header.get("blobs") if isinstance(header, dict) else None
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s >= 0 for s in sizes):
        raise ProtocolError("header is not an object with a list of blob sizes")
    if sum(sizes) > max_blob:
        raise ProtocolError(f"blobs of {sum(sizes)} bytes exceed {max_blob}")
    try:
        return header, [_read_exact(sock, size) for size in sizes]
    except TimeoutError:
        raise
    except OSError as exc:
        raise ProtocolError(f"unreadable blob: {exc}") from None


def recv_frame(
    sock: socket.socket, max_header: int = MAX_HEADER, max_blob: int = MAX_BLOB
) -> tuple[dict[str, Any], list[bytes], bytes]:
    """Like :func:`recv_message`, plus the header's raw bytes (to forward it unchanged).

    The session's init relays the holder's records to the host with this: it checks
    the header, and forwards the bytes as they came unless it has to amend them.
    """
    try:
        (length,) = _LENGTH.unpack(_read_exact(sock, _LENGTH.size))
        if length > max_header:
            raise ProtocolError(f"header of {length} bytes exceeds {max_header}")
        raw = _read_exact(sock, length)
        header = json.loads(raw)
    except TimeoutError:
        raise
    except (OSError, ValueError) as exc:
        raise ProtocolError(f"unreadable message: {exc}") from None
    sizes = header.get("blobs") if isinstance(header, dict) else None
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s >= 0 for s in sizes):
        raise ProtocolError("header is not an object with a list of blob sizes")
    if sum(sizes) > max_blob:
        raise ProtocolError(f"blobs of {sum(sizes)} bytes exceed {max_blob}")
    try:
        return header, [_read_exact(sock, size) for size in sizes], raw
    except OSError as exc:
        raise ProtocolError(f"unreadable blob: {exc}") from None


def send_raw(sock: socket.socket, raw_header: bytes, blobs: Sequence[bytes] = ()) -> None:
    """Send a header already serialised (by :func:`recv_frame`) and its blobs."""
    sock.sendall(_LENGTH.pack(len(raw_header)) + raw_header)
    for blob in blobs:
        sock.sendall(blob)
