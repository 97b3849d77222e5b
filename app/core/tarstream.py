"""Stream a tar archive of stored files without holding any file in memory."""

import tarfile
import time
from collections.abc import Callable, Iterator
from typing import IO

BLOCK = 512
CHUNK = 1024 * 1024


def tar_stream(members: list[tuple[str, int]], open_member: Callable[[str], IO[bytes]], root: str) -> Iterator[bytes]:
    """Yield a POSIX tar of `members` ((name, size) pairs), each read through open_member(name), under `root`/."""
    now = int(time.time())
    for name, size in members:
        info = tarfile.TarInfo(f"{root}/{name}")
        info.size, info.mtime, info.mode = size, now, 0o644
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        written = 0
        with open_member(name) as handle:
            while chunk := handle.read(CHUNK):
                written += len(chunk)
                yield chunk
        if written != size:  # the file changed under us: a corrupt archive is worse than a failed download
            raise OSError(f"{name} changed size while being archived ({size} -> {written} bytes)")
        if size % BLOCK:
            yield b"\0" * (BLOCK - size % BLOCK)
    yield b"\0" * (2 * BLOCK)  # end-of-archive marker
