"""ndshm.SharedMemory: multiprocessing.shared_memory.SharedMemory's API without its resource tracker."""

from __future__ import annotations

import secrets
from typing import Any

from . import _core

__all__ = ["SharedMemory"]


class SharedMemory:
    """A named block of shared memory, as multiprocessing.shared_memory.SharedMemory.

    Differences that remove the stdlib's traps: no resource tracker (no warnings, no segment
    unlinked behind a user's back); ``size`` is exactly what was asked; a name not unlinked lives
    until the session ends (all its processes gone), never longer; ``kill -9`` leaks nothing.
    """

    def __init__(
        self,
        name: str | None = None,
        create: bool = False,
        size: int = 0,
        *,
        track: bool = True,
        session: str | None = None,
    ) -> None:
        del track  # accepted for compatibility: nothing here needs tracking
        if create:
            if size <= 0:
                raise ValueError("'size' must be a positive number different from zero")
            name = ("psm_" + secrets.token_hex(4)) if name is None else name.lstrip("/")
            self._mapping = _core.create(size, session or "", name, True)
        else:
            if name is None:
                raise ValueError("'name' can only be None if create=True")
            self._mapping = _core.attach(session or "", name.lstrip("/"), True)
        self._buf: memoryview | None = memoryview(self._mapping)

    @property
    def name(self) -> str:
        return self._mapping.name

    @property
    def size(self) -> int:
        return self._mapping.size

    @property
    def session(self) -> str:
        return self._mapping.session

    @property
    def buf(self) -> memoryview | None:
        return self._buf

    def close(self) -> None:
        """Releases this process's view; raises BufferError while arrays still use ``buf``."""
        if self._buf is not None:
            self._buf.release()
            self._buf = None

    def unlink(self) -> None:
        """Removes the name; memory is freed once every process has closed it."""
        _core.unlink(self._mapping.session, self._mapping.name)

    def __reduce__(self) -> Any:
        return _reattach, (self.name, self.session)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, size={self.size})"

    def __del__(self) -> None:
        try:
            self.close()
        except BufferError:
            pass


def _reattach(name: str, session: str) -> SharedMemory:
    return SharedMemory(name, session=session)
