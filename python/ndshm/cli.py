"""The ndshm command: ls (live segments) and gc (reclaim orphans)."""

from __future__ import annotations

import argparse
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
            state = "named" if s["named"] else (f"{s['tickets']} pending" if s["tickets"] else "")
            rows.append(
                (f"{session}:{s['name']}", _size(s["size"]), s["dtype"] or "-", s["shape"] or "-",
                 holders, f"{s['age']:.1f}s", state)
            )  # fmt: skip
    if not rows:
        print("no live segments")
        return 0
    header = ("SEGMENT", "SIZE", "DTYPE", "SHAPE", "HOLDERS", "AGE", "STATE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    total = 0
    for session in _sessions(args):
        reclaimed = _core.collect_orphans(session, args.min_age)
        if reclaimed:
            print(f"{session}: reclaimed {reclaimed} segment(s) that no process mapped")
        total += reclaimed
    if not total:
        print("nothing to reclaim")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ndshm", description="Zero-copy shared NumPy arrays: inspect and clean up segments."
    )
    parser.add_argument("--version", action="version", version=f"ndshm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("ls", help="list live segments (handle, size, dtype, shape, holders, age)")
    ls.add_argument("--session", help="only this session (default: every session of this user)")
    ls.set_defaults(run=cmd_ls)
    gc = sub.add_parser(
        "gc",
        help="reclaim segments no process maps (pending hand-overs and named segments left behind)",
    )
    gc.add_argument("--session", help="only this session (default: every session of this user)")
    gc.add_argument(
        "--min-age",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="spare segments younger than this, which may still be on their way (default: 60)",
    )
    gc.set_defaults(run=cmd_gc)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
