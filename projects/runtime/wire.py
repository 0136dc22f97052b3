"""The bytes exchanged with the engine that the SDK leaves to us: a tar archive
for put_archive (files copied into a container) and the multiplexed frames of
an exec's output."""

import io
import os
import socket
import struct
import tarfile
import time
from collections.abc import Iterator

from .base import FileSpec


def tar_archive(files: tuple[FileSpec, ...], *, root: str = "/") -> bytes:
    """The files as a tar archive to unpack at `root`, with their directories below it (owned like the files, 0700)."""
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        directories: set[str] = set()
        for f in files:
            name = os.path.relpath(f.path, root)
            directory = os.path.dirname(name)
            if directory and directory not in directories:
                directories.add(directory)
                info = tarfile.TarInfo(directory)
                info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, 0o700, f.uid, f.gid, now
                tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(f.content), f.mode, f.uid, f.gid, now
            tar.addfile(info, io.BytesIO(f.content))
    return buffer.getvalue()


def exec_frames(sock: socket.socket) -> Iterator[tuple[int, bytes]]:
    """The engine's multiplexed exec output: (1 = stdout | 2 = stderr, bytes) until the end."""

    def exactly(n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            more = sock.recv(n - len(data))
            if not more:
                return None
            data += more
        return data

    while (header := exactly(8)) is not None:
        stream, size = struct.unpack(">BxxxL", header)
        while size > 0:
            data = sock.recv(min(size, 256 * 1024))
            if not data:
                return
            size -= len(data)
            yield stream, data
