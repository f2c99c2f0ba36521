"""ndshm.SharedMemory: multiprocessing.shared_memory.SharedMemory's API without its resource tracker."""

from __future__ import annotations

from multiprocessing import shared_memory as _stdlib
from typing import Any

from . import _core

__all__ = ["SharedMemory"]


class SharedMemory:
    """A named block of shared memory, as multiprocessing.shared_memory.SharedMemory.

    Differences that remove the stdlib's traps: no resource tracker (no warnings, no segment
    unlinked behind a user's back); ``size`` is exactly what was asked; a name not unlinked lives
    until its program ends (all its processes gone, plus the broker's linger), never longer;
    ``kill -9`` leaks nothing. ``track=False`` (Python 3.13's keyword) keeps the name after the
    program, until ``unlink()`` or ``ndshm gc``: a hand-over to a program started later.
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
        self._buf: memoryview | None = None
        self._mapping: _core.Mapping | None = None
        if create:
            if size <= 0:
                raise ValueError("'size' must be a positive number different from zero")
            self._mapping = self._create(name, size, session or "", persist=not track)
        else:
            if name is None:
                raise ValueError("'name' can only be None if create=True")
            self._mapping = _core.attach(session or "", name.lstrip("/"), True)
        self._size, self._session = self._mapping.size, self._mapping.session
        self._name = "/" + self._mapping.name  # as the stdlib keeps it on POSIX; .name has no slash
        self._buf = memoryview(self._mapping)

    @staticmethod
    def _create(name: str | None, size: int, session: str, *, persist: bool) -> _core.Mapping:
        if name is not None:
            return _core.create(size, session, name.lstrip("/"), True, persist=persist)
        while True:  # a random name, drawn again while taken, as the stdlib does (and with its names)
            drawn = _stdlib._make_filename().lstrip("/")  # noqa: SLF001
            try:
                return _core.create(size, session, drawn, True, persist=persist)
            except FileExistsError:
                continue

    @property
    def name(self) -> str:
        return self._name[1:]

    @property
    def size(self) -> int:
        return self._size

    @property
    def session(self) -> str:
        return self._session

    @property
    def buf(self) -> memoryview | None:
        return self._buf

    def close(self) -> None:
        """Drops this object's view. Unlike the stdlib, arrays still built over ``buf`` stay valid
        (they keep the mapping alive) instead of pointing at unmapped memory."""
        self._buf = None
        self._mapping = None

    def unlink(self) -> None:
        """Removes the name; memory is freed once every process has closed it."""
        _core.unlink(self._session, self.name)

    def __reduce__(self) -> Any:
        return _reattach, (self.name, self.session)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, size={self.size})"


def _reattach(name: str, session: str) -> SharedMemory:
    return SharedMemory(name, session=session)
