"""The ndshm command: ls (live segments), gc (reclaim orphans), convert, cat and ls-h5 (HDF5 files)."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__, _core


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _sessions(args: argparse.Namespace) -> list[str]:
    return [args.session] if args.session else sorted(_core.list_sessions())


def cmd_ls(args: argparse.Namespace) -> int:
    rows = []
    for session in _sessions(args):
        for s in _core.list_segments(session):
            holders = ",".join(str(p) for p in sorted(set(s["holders"]))) or "-"
            states = ["named"] if s["named"] else []
            if s["tickets"]:
                states.append(f"{s['tickets']} pending")
            if s["persistent"]:
                states.append("kept")  # beyond its program: track=False or handle(persist=True)
            rows.append(
                (f"{session}:{s['name']}", _size(s["size"]), s["dtype"] or "-", s["shape"] or "-",
                 holders, s["program"], f"{s['age']:.1f}s", ",".join(states))
            )  # fmt: skip
    if not rows:
        print("no live segments")
        return 0
    header = ("SEGMENT", "SIZE", "DTYPE", "SHAPE", "HOLDERS", "PROGRAM", "AGE", "STATE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    total = 0
    # One program's leftovers: that program is over (or its user says so), nothing of it is on its way.
    min_age = args.min_age if args.min_age is not None else (0.0 if args.program else 60.0)
    for session in _sessions(args):
        reclaimed = _core.collect_orphans(session, min_age, args.program or "")
        if reclaimed:
            print(f"{session}: reclaimed {reclaimed} segment(s) that no process mapped")
        total += reclaimed
    if not total:
        print("nothing to reclaim")
    return 0


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def cmd_convert(args: argparse.Namespace) -> int:
    import signal

    from .hdf5 import to_hdf5

    # Ctrl-C and SIGTERM unwind the run so that nothing is left behind. The signal is also recorded:
    # when it lands inside h5py's file callbacks, h5py reports it as an OSError instead.
    stopped: list[int] = []

    def stop(signum, frame):
        stopped.append(signum)
        raise KeyboardInterrupt if signum == signal.SIGINT else SystemExit(128 + signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    options = {}
    if args.delimiter is not None:
        options["delimiter"] = args.delimiter.encode().decode("unicode_escape")
    if args.comments is not None:
        options["comments"] = args.comments or None
    for key in ("skiprows", "max_rows", "quotechar"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    if args.usecols:
        options["usecols"] = [int(c) for c in args.usecols.split(",")]
    if args.truncate:
        options["truncate"] = True
    before = _identity(args.output)
    report = (lambda line: print(f"ndshm convert: {line}", file=sys.stderr)) if args.verbose else None
    client = None
    try:
        if args.scheduler:
            client = _connect(args.scheduler)
        to_hdf5(
            args.inputs, args.output, dtype=args.dtype, format=args.format, workers=args.workers,
            threads=args.threads, compression=args.compression, layout=args.layout,
            overwrite=args.overwrite, progress=False if args.quiet else None, executor=client,
            window=int(args.window * 2**20), on_progress=report, **options,
        )  # fmt: skip
    except (KeyboardInterrupt, SystemExit, OSError, ValueError, RuntimeError) as error:
        if not stopped:  # a real error (ParseError is a ValueError): what and where
            print(f"ndshm convert: {error}", file=sys.stderr)
            return 1
        # A signal can also land after the output was linked into place (while workers shut down).
        written = _identity(args.output) not in (before, None)
        state = "was complete before that" if written else "was not written"
        print(f"ndshm convert: interrupted; {args.output} {state}", file=sys.stderr)
        return 128 + stopped[0]
    except Exception as error:  # from the Dask cluster, e.g. KilledWorker: what happened, not a traceback
        if client is None or stopped:
            raise
        print(f"ndshm convert: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        if client is not None:
            client.close()
    return 0


def _row_range(text: str) -> slice:
    """--rows A:B (either side may be left out; negative counts from the end)."""
    start, colon, stop = text.partition(":")
    try:
        if not colon:
            raise ValueError
        return slice(int(start) if start.strip() else None, int(stop) if stop.strip() else None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rows must be A:B, e.g. 0:100 or 1000: (not {text!r})") from None


def cmd_cat(args: argparse.Namespace) -> int:
    from ._h5text import cat

    try:
        cat(args.file, args.dataset, sys.stdout, rows=args.rows, format=args.format, header=args.header)
        sys.stdout.flush()
    except BrokenPipeError:  # `ndshm cat ... | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # as a tool killed by SIGPIPE
    except (OSError, KeyError, ValueError, TypeError) as error:
        print(f"ndshm cat: {error.args[0] if isinstance(error, KeyError) else error}", file=sys.stderr)
        return 1
    return 0


def cmd_ls_h5(args: argparse.Namespace) -> int:
    from ._h5text import describe_file

    try:
        entries = describe_file(args.file)
    except OSError as error:
        print(f"ndshm ls-h5: {error}", file=sys.stderr)
        return 1
    if not entries:
        print(f"{args.file}: no datasets")
        return 0
    rows = [(e["name"], "-" if e["rows"] is None else str(e["rows"]), str(e["shape"]),
             _dtype_text(e["dtype"]), e["storage"], e["source"] or "-") for e in entries]  # fmt: skip
    header = ("DATASET", "ROWS", "SHAPE", "DTYPE", "STORAGE", "SOURCE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _dtype_text(dtype) -> str:
    """A compound as name:type,... (convert's --dtype syntax), anything else as NumPy names it."""
    if dtype.names is None:
        return dtype.str if dtype.kind != "O" else "object"
    return ",".join(f"{n}:{dtype.fields[n][0].str.lstrip('|<')}" for n in dtype.names)


def _connect(address: str):
    try:
        from distributed import Client
    except ImportError:
        raise RuntimeError("--scheduler needs Dask: pip install 'ndshm[dask]'") from None
    return Client(address, timeout=30)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ndshm", description="Zero-copy shared NumPy arrays: inspect and clean up segments."
    )
    parser.add_argument("--version", action="version", version=f"ndshm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser(
        "ls", help="list live segments (handle, size, dtype, shape, holders, creating program, age)"
    )
    ls.add_argument("--session", help="only this session (default: every session of this user)")
    ls.set_defaults(run=cmd_ls)
    gc = sub.add_parser(
        "gc",
        help="reclaim segments no process maps (pending hand-overs and named segments left behind, "
        "kept ones too: track=False, handle(persist=True))",
    )
    gc.add_argument("--session", help="only this session (default: every session of this user)")
    gc.add_argument(
        "--program", metavar="ID", help="only segments this program created (the PROGRAM of ndshm ls)"
    )
    gc.add_argument(
        "--min-age",
        type=float,
        metavar="SECONDS",
        help="spare segments younger than this, which may still be on their way "
        "(default: 60; 0 with --program)",
    )
    gc.set_defaults(run=cmd_gc)

    ct = sub.add_parser(
        "cat",
        help="print rows of an HDF5 dataset as text (read back as ndshm.read_hdf5 does)",
        description="Prints the rows of DATASET, one line a row, compound fields (and the dimensions "
        "after the first) as columns: numbers in their shortest exact form, strings as ASCII.",
    )
    ct.add_argument("file", metavar="FILE.h5")
    ct.add_argument("dataset", metavar="DATASET")
    ct.add_argument(
        "--rows", type=_row_range, metavar="A:B", help="rows A to B-1, a Python slice (--rows=-10: last ten)"
    )
    ct.add_argument("--format", choices=["tsv", "csv"], default="tsv", help="column separator (default tsv)")
    ct.add_argument("--header", action="store_true", help="a first line of column names")
    ct.set_defaults(run=cmd_cat)
    lh = sub.add_parser(
        "ls-h5", help="list an HDF5 file's datasets: rows, shape, dtype, storage, source file"
    )
    lh.add_argument("file", metavar="FILE.h5")
    lh.set_defaults(run=cmd_ls_h5)

    from .presets import PRESETS

    cv = sub.add_parser(
        "convert",
        help="load text files in parallel and write them into one HDF5 file",
        description="Loads every INPUT with ndshm.loadtxt (its C++ threads in this process, one file "
        "ahead of the writer) and writes one HDF5 file, readable by stock h5py. The output appears only when "
        "complete; an interrupted run leaves an existing OUTPUT untouched and no temporary file.",
    )
    cv.add_argument("inputs", nargs="+", metavar="INPUT", help="text files (.gz, .bz2, .xz too)")
    cv.add_argument("-o", "--output", required=True, metavar="OUTPUT.h5")
    kind = cv.add_mutually_exclusive_group()
    kind.add_argument("--format", choices=sorted(PRESETS), help="a preset: dtype plus options")
    kind.add_argument(
        "--dtype",
        metavar="SPEC",
        help="e.g. chr:S,pos:i4,pct:f4,c:i4,t:i4 (S: as wide as the longest name), or f8",
    )
    cv.add_argument("--delimiter", help="field delimiter (default: runs of whitespace); \\t for tab")
    cv.add_argument("--comments", help="comment character (default #; empty for none)")
    cv.add_argument("--skiprows", type=int, help="lines to skip at the top of every file")
    cv.add_argument("--usecols", metavar="I,J,...", help="columns to read, 0-based, negative from the end")
    cv.add_argument("--max-rows", type=int, help="rows of data to read per file")
    cv.add_argument("--quotechar", help="quote character for fields holding delimiters")
    cv.add_argument(
        "--truncate",
        action="store_true",
        help="cut strings too long for an explicit S width (numpy's way; default: an error)",
    )
    cv.add_argument(
        "--workers",
        type=int,
        help="load in this many worker processes (default: none, threads in this process; processes only "
        "for loads numpy's parser must do, one per file, at most cores)",
    )
    cv.add_argument(
        "--threads", type=int, help="parsing threads per load (default: all cores; cores / workers each)"
    )
    cv.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="load on this Dask cluster (e.g. tcp://host:8786) instead of local processes; needs "
        "pip install 'ndshm[dask]'. Inputs must be readable by the workers at the same paths.",
    )
    cv.add_argument(
        "--compression",
        default="none",
        metavar="none|gzip[:LEVEL]|lzf|zstd[:LEVEL]|blosc[:CODEC[:LEVEL]]",
        help="chunk compression, compressed on all cores; zstd and blosc need hdf5plugin "
        "(pip install 'ndshm[compress]'), also to read the file (default: none)",
    )
    cv.add_argument(
        "--layout",
        choices=["per-file", "concat"],
        default="per-file",
        help="one dataset per file (default), or one 'data' dataset plus an 'index'",
    )
    cv.add_argument(
        "--window",
        type=float,
        default=256,
        metavar="MIB",
        help="load plain inputs larger than this in windows of this many MiB of text, appended as they "
        "come: memory holds about workers + 1 windows whatever the input's size (default: 256)",
    )
    cv.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    cv.add_argument("--quiet", action="store_true", help="no progress bar")
    cv.add_argument(
        "--verbose",
        action="store_true",
        help="a line on stderr as loading begins and as each input is written (for logs: no bar there)",
    )
    cv.set_defaults(run=cmd_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
