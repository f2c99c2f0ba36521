"""ndshm's C++ core: shared segments, their broker and handle strings."""

from collections.abc import Sequence
from typing import Annotated

import numpy
from numpy.typing import NDArray


class Mapping:
    """One mapping of a shared segment; numpy arrays over it keep it alive."""

    @property
    def name(self) -> str:
        """The segment's name; empty for private memory."""

    @property
    def session(self) -> str: ...

    @property
    def size(self) -> int:
        """Size in bytes, as created."""

    @property
    def writable(self) -> bool: ...

    @property
    def address(self) -> int: ...

    def __repr__(self) -> str: ...

def create(size: int, session: str = '', name: str = '', named: bool = False, dtype: str = '', shape: str = '', populate: bool = True, persist: bool = False) -> Mapping:
    """
    Creates a zero-filled segment (pages reserved up front) and maps it. persist: a named segment kept after its program ends, until unlink or collect_orphans.
    """

def attach(session: str, name: str, writable: bool = True, ticket: int = 0) -> Mapping:
    """Maps an existing segment; a ticket (not 0) is redeemed."""

def issue_ticket(segment: Mapping, persist: bool = False) -> int:
    """
    Keeps the segment alive for one future attach of the returned ticket, while this program runs (persist: until that attach or collect_orphans).
    """

def unlink(session: str, name: str) -> None: ...

def list_segments(session: str) -> list:
    """Live segments of a session, as dicts (empty if no broker runs)."""

def collect_orphans(session: str, min_age: float, program: str = '') -> int: ...

def program_id() -> str:
    """This process's program id (founded on first use)."""

def set_program_id(id: str) -> bool:
    """
    Joins the program id (a multiprocessing parent's); False, and nothing changes, if it is malformed.
    """

def list_sessions() -> list[str]: ...

def broker_pid(session: str) -> int: ...

def disconnect(session: str) -> None: ...

def default_session() -> str: ...

def set_broker_path(path: str) -> None: ...

class TextJob:
    """A text input, its grammar and where its rows are."""

    @staticmethod
    def open(path: str, delimiter: str, comment: str, quote: str, skiprows: int, max_rows: int, usecols: Sequence[int], truncate: bool, threads: int, one_pass: bool, begin: int = 0, end: int = 18446744073709551615, measure: Sequence[int] = []) -> TextJob:
        """
        Maps a file and plans its rows (a .gz file without quoting, or with one_pass text one thread parses: streamed, its rows counted as parse_new parses them; rows is None until then); begin/end: only the lines that start within those bytes of a plain file; measure: columns whose longest value the plan finds (widths; [ALL_COLUMNS]: every column).
        """

    @staticmethod
    def from_bytes(data: bytes, name: str, delimiter: str, comment: str, quote: str, skiprows: int, max_rows: int, usecols: Sequence[int], truncate: bool, threads: int, one_pass: bool, measure: Sequence[int] = []) -> TextJob:
        """Plans the rows of text held in memory (or streams them, as open does)."""

    @property
    def rows(self) -> int | None: ...

    @property
    def streamed(self) -> bool:
        """
        True for a stream parsed in one pass (parse_new), False for planned rows (parse).
        """

    @property
    def columns(self) -> int: ...

    @property
    def widths(self) -> list[int]:
        """The longest value of each measured column (see open's measure)."""

    def parse(self, fields: Sequence[tuple[int, int, int, bool, str]], address: int, nbytes: int, row_stride: int) -> tuple[int, str, int, int, str, int, list[int]] | None:
        """
        Parses every planned row into the buffer at address (fields: kind, size, offset, big_endian, type name); returns what truncate cut, (values, file, line, column, text, field, widths), or None.
        """

    def parse_new(self, fields: Sequence[tuple[int, int, int, bool, str]], row_stride: int, shared: bool, session: str, dtype: str, shape_tail: str) -> tuple[Mapping, int, tuple[int, str, int, int, str, int, list[int]] | None]:
        """
        Parses a streamed job in one pass into memory that grows as rows arrive; returns (Mapping, rows, what was cut as parse says): a new shared segment, or with shared=False private memory (a Mapping without a name). shape_tail completes the listed shape after the row count, e.g. ', 5)' or ',)'.
        """

ALL_COLUMNS: int = -9223372036854775808

def parse_handle(text: str) -> tuple:
    """
    Splits a handle into (session, name, ticket, offset, itemsize, shape, strides, descr).
    """

def decoded_filters() -> list[int]:
    """
    HDF5 filter ids this build decodes itself (the others are read through h5py).
    """

def read_chunked(path: str, shape: Sequence[int], chunk: Sequence[int], itemsize: int, row_begin: int, row_end: int, filters: Sequence[tuple[int, Sequence[int]]], offsets: Sequence[int], sizes: Sequence[int], masks: Sequence[int], origins: Sequence[int], fields: Sequence[tuple[int, int, int]], out_itemsize: int, address: int, nbytes: int, threads: int) -> None:
    """
    Reads and decodes stored chunks (file offsets, sizes, filter masks, origins flattened) of rows [row_begin, row_end) into the buffer at address; fields: (from, to, size) bytes of each element (empty: all of it). Raises ChunkError for a bad chunk.
    """

def read_contiguous(path: str, file_offset: int, shape: Sequence[int], itemsize: int, row_begin: int, row_end: int, fields: Sequence[tuple[int, int, int]], out_itemsize: int, address: int, nbytes: int, threads: int) -> None:
    """
    Reads rows [row_begin, row_end) of a contiguous dataset stored from file_offset into the buffer at address.
    """

def encode_chunks(filters: Sequence[tuple[int, Sequence[int]]], data: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)], chunk_bytes: int, threads: int) -> list:
    """
    Cuts data (bytes as a 1-d uint8 array) into chunks of chunk_bytes, the last padded with zeros, and encodes them through filters on threads threads: [(stored bytes, filter mask)], for write_direct_chunk.
    """

def format_handle(session: str, name: str, ticket: int, offset: int, itemsize: int, shape: Sequence[int], strides: Sequence[int], descr: str) -> str: ...
