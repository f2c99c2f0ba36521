"""ndshm: NumPy arrays in shared memory that cross processes as small handles and cannot leak."""

from __future__ import annotations

from pathlib import Path

from . import _core, _program
from ._array import attach, empty, empty_like, handle, is_shared, segment_of, share, zeros
from ._core import BrokerError, ParseError, SegmentNotFoundError
from ._loadtxt import TruncationWarning, loadtxt
from ._shared_memory import SharedMemory
from .hdf5 import to_hdf5
from .hdf5_read import ChunkError, read_hdf5
from .presets import PRESETS

_core.set_broker_path(str(Path(__file__).with_name("ndshm-broker")))
_program.join()

__version__ = "0.1.0"  # pyproject.toml's too (scikit-build-core's regex provider); no importlib.metadata

__all__ = [
    "BrokerError",
    "ChunkError",
    "PRESETS",
    "ParseError",
    "SegmentNotFoundError",
    "SharedMemory",
    "TruncationWarning",
    "attach",
    "empty",
    "empty_like",
    "handle",
    "is_shared",
    "loadtxt",
    "read_hdf5",
    "segment_of",
    "share",
    "to_hdf5",
    "zeros",
]
