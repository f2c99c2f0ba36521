"""ndshm.loadtxt vs numpy.loadtxt, pandas, pyarrow and polars on 1 GB generated files.

Run: python bench/bench_loadtxt.py [--size-mb 1000] [--reps 3] [--data DIR]
Files: the five-column coverage format (plain, gzip -1 and BGZF) and a float64 matrix (10 columns),
generated once into DIR (default: /tmp/ndshm-bench) and put in the page cache as a read from disk puts them
(_common.cache_as_read), once per run for the files the run times (page cache warm).
Every peer's result is converted to the same array as numpy.loadtxt's; medians of --reps runs; one
process, same cores.
Writes bench/results/<date>-<machine>/loadtxt.{json,md}; --gzip-only and --numpy-pairs (numpy.loadtxt and
ndshm on one thread in interleaved pairs, for a ratio less moved by the VM's drift) write loadtxt-gzip.* and
loadtxt-numpy.*; --widths [--before PYTHON] writes loadtxt-widths.* (the width pass: see widths()).
ndshm reads the coverage file with the coverage5 preset (chr S: as wide as its longest name, measured),
numpy and the peers with the dtype that gives (chr S5: the file's names are chr1..chr22).
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import ndshm
from _common import cache_as_read, coverage_block, median, save, write_repeated

PRESET = ndshm.PRESETS["coverage5"]
COVERAGE = np.dtype([("chr", "S5"), ("pos", "<i4"), ("pct", "<f4"), ("c", "<i4"), ("t", "<i4")])


def generate(folder: Path, size: int) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    n = 200_000
    files = {}
    cov = folder / f"coverage-{size}.tsv"
    if not cov.exists():
        write_repeated(cov, coverage_block(rng, n), size)
    files["coverage"] = cov
    mat = folder / f"matrix-{size}.txt"
    if not mat.exists():
        values = rng.standard_normal((n // 4, 10)) * 1000
        block = "".join(" ".join(f"{v:.6f}" for v in row) + "\n" for row in values)
        write_repeated(mat, block, size)
    files["matrix"] = mat
    gz = folder / f"coverage-{size}.tsv.gz"
    if not gz.exists():
        subprocess.run(f"gzip -1 -c {cov} > {gz}", shell=True, check=True)
    files["coverage.gz"] = gz
    bgzf = folder / f"coverage-{size}.bgzf.tsv.gz"
    if not bgzf.exists():
        write_bgzf(cov, bgzf)
    files["coverage.bgzf.gz"] = bgzf
    return files


def write_bgzf(source: Path, target: Path, level: int = 1) -> None:
    """BGZF as bgzip (htslib) writes it, with Biopython's writer: gzip members of at most 64 KiB of
    text, each with its compressed size in a "BC" extra field, then the empty end-of-file member."""
    from Bio import bgzf

    with open(source, "rb") as src, bgzf.BgzfWriter(target, "wb", compresslevel=level) as out:
        while data := src.read(1 << 20):
            out.write(data)


# ---------------------------------------------------------------- the readers, each to numpy's array
def read_numpy(path, kind):
    if kind == "coverage":
        return np.loadtxt(path, dtype=COVERAGE, delimiter="\t")
    return np.loadtxt(path)


def read_ndshm(threads):
    def read(path, kind):
        if kind == "coverage":
            return ndshm.loadtxt(path, threads=threads, **PRESET)
        return ndshm.loadtxt(path, threads=threads)

    return read


def _to_coverage(columns) -> np.ndarray:
    out = np.empty(len(columns[1]), COVERAGE)
    for name, col in zip(COVERAGE.names, columns, strict=True):
        out[name] = col
    return out


def read_pandas(engine):
    def read(path, kind):
        import pandas as pd

        if kind == "coverage":
            df = pd.read_csv(path, sep="\t", header=None, engine=engine,
                             dtype={0: "S10" if engine == "c" else str, 1: "int32", 2: "float32",
                                    3: "int32", 4: "int32"})  # fmt: skip
            return _to_coverage([df[i].to_numpy().astype("S10") if i == 0 else df[i].to_numpy()
                                 for i in range(5)])  # fmt: skip
        df = pd.read_csv(path, sep=" ", header=None, engine=engine, dtype="float64")
        return df.to_numpy()

    return read


def read_pyarrow(path, kind):
    import pyarrow as pa
    from pyarrow import csv

    if kind == "coverage":
        types = {"f0": pa.binary(), "f1": pa.int32(), "f2": pa.float32(), "f3": pa.int32(), "f4": pa.int32()}
        table = csv.read_csv(
            path,
            read_options=csv.ReadOptions(column_names=list(types)),
            parse_options=csv.ParseOptions(delimiter="\t"),
            convert_options=csv.ConvertOptions(column_types=types),
        )
        return _to_coverage([table[n].to_numpy(zero_copy_only=False).astype("S10") if n == "f0"
                             else table[n].to_numpy() for n in types])  # fmt: skip
    table = csv.read_csv(path, read_options=csv.ReadOptions(autogenerate_column_names=True),
                         parse_options=csv.ParseOptions(delimiter=" "))  # fmt: skip
    return np.column_stack([c.to_numpy() for c in table.columns])


def read_polars(path, kind):
    import polars as pl

    if kind == "coverage":
        df = pl.read_csv(path, separator="\t", has_header=False,
                         schema={"a": pl.String, "b": pl.Int32, "c": pl.Float32, "d": pl.Int32,
                                 "e": pl.Int32})  # fmt: skip
        return _to_coverage([df[n].to_numpy().astype("S10") if n == "a" else df[n].to_numpy()
                             for n in "abcde"])  # fmt: skip
    df = pl.read_csv(path, separator=" ", has_header=False, schema={f"c{i}": pl.Float64 for i in range(10)})
    return df.to_numpy()


def timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def peak_memory(path: Path, kind: str) -> dict:
    """Peak anonymous + shared resident memory of a fresh process loading path with ndshm (sampled)."""
    code = f"""
import threading, time, numpy as np, ndshm, sys
COVERAGE = np.dtype({COVERAGE.descr!r})
def rss():
    fields = dict(l.split(':', 1) for l in open('/proc/self/status'))
    return sum(int(fields[k].split()[0]) * 1024 for k in ('RssAnon', 'RssShmem'))
base = rss(); peak = [base]; done = False
def sample():
    while not done:
        peak[0] = max(peak[0], rss()); time.sleep(0.002)
threading.Thread(target=sample, daemon=True).start()
options = {{'dtype': COVERAGE, 'delimiter': '\\t'}} if {kind!r} == 'coverage' else {{}}
a = ndshm.loadtxt({str(path)!r}, **options)
done = True
peak[0] = max(peak[0], rss())
print(peak[0] - base, a.nbytes)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    extra, nbytes = map(int, out.split())
    return {
        "output_mib": nbytes / 2**20,
        "peak_mib": extra / 2**20,
        "over_output_mib": (extra - nbytes) / 2**20,
    }


def gunzip_alone(path: Path) -> float:
    try:
        from isal import igzip as fastest
    except ImportError:
        fastest = gzip
    t0 = time.perf_counter()
    with fastest.open(path, "rb") as f:
        while f.read(1 << 24):
            pass
    return time.perf_counter() - t0


def gzip_lines(results: dict) -> list[str]:
    lines = []
    for name, title in (("coverage.gz", "gzip -1"), ("coverage.bgzf.gz", "BGZF (level 1)")):
        g = results[name]
        pairs = ", ".join(f"{r:.2f}" for r in g["pair_ratios"])
        lines.append(f"## {title}: ISA-L decompress alone (one thread) {g['decompress_alone_s']:.3f} s, "
                     f"ndshm.loadtxt {g['ndshm_loadtxt_s']:.3f} s; ratio (median of interleaved pairs) "
                     f"{g['ratio']:.2f} (pairs: {pairs})\n")  # fmt: skip
    return lines


def paired(first, second, reps: int) -> tuple[list[float], list[float], list[float]]:
    """Times of first() and second() in interleaved pairs (this VM's speed drifts between runs: each
    pair sees the same drift; which runs first alternates), and each pair's ratio second / first."""
    a, b = [], []
    for k in range(reps):
        if k % 2 == 0:
            a.append(first())
            b.append(second())
        else:
            b.append(second())
            a.append(first())
    return a, b, [y / x for x, y in zip(a, b, strict=True)]


def gzip_ratio(path: Path, reps: int) -> dict:
    """ndshm.loadtxt's time over decompressing alone: medians of each and the median of the pairs' ratios."""
    alone, loaded, ratios = paired(
        lambda: gunzip_alone(path), lambda: timed(ndshm.loadtxt, path, COVERAGE, "#", "\t")[0], reps
    )
    return {"decompress_alone_s": median(alone), "ndshm_loadtxt_s": median(loaded), "ratio": median(ratios),
            "pair_ratios": ratios}  # fmt: skip


def numpy_ratio(path: Path, kind: str, reps: int) -> dict:
    """numpy.loadtxt's time over ndshm.loadtxt's on one thread, in interleaved pairs."""
    ndshm_s, numpy_s, ratios = paired(
        lambda: timed(read_ndshm(1), path, kind)[0], lambda: timed(read_numpy, path, kind)[0], reps
    )
    return {"numpy_s": median(numpy_s), "ndshm_1_thread_s": median(ndshm_s), "ratio": median(ratios),
            "pair_ratios": ratios}  # fmt: skip


def numpy_lines(results: dict) -> list[str]:
    lines = []
    for kind, r in results.items():
        pairs = ", ".join(f"{x:.2f}" for x in r["pair_ratios"])
        lines.append(f"## {kind}: numpy.loadtxt {r['numpy_s']:.3f} s, ndshm.loadtxt (1 thread) "
                     f"{r['ndshm_1_thread_s']:.3f} s; ndshm {r['ratio']:.2f}x faster (median of interleaved "
                     f"pairs; pairs: {pairs})\n")  # fmt: skip
    return lines


# One load in a fresh process: the seconds ndshm.loadtxt took (the process's start not counted).
LOAD_ONCE = """
import sys, time, numpy as np, ndshm
path, threads, dtype = sys.argv[1], int(sys.argv[2]), sys.argv[3]
given = {"dtype": np.dtype(eval(dtype)), "delimiter": "\\t"} if dtype != "preset" else None
options = given or dict(ndshm.PRESETS["coverage5"])
t0 = time.perf_counter()
a = ndshm.loadtxt(path, threads=threads, **options)
print(time.perf_counter() - t0, a.dtype["chr"].itemsize)
"""


def widths(files: dict, reps: int, before: str | None) -> dict:
    """The width pass's cost, runs interleaved in fresh processes: the coverage5 preset (chr S, its
    width measured while the rows are planned) against the same dtype given (chr S5, no measuring), on
    1 and 2 threads, plain and BGZF; with --before, the same loads by another build's python too (the
    commit before the width pass, whose preset was chr S10)."""
    builds = {"after": sys.executable, **({"before": before} if before else {})}
    runs = [(build, name, threads, dtype) for build in builds for name in ("coverage", "coverage.bgzf.gz")
            for threads in (1, 2) for dtype in ("preset", repr(COVERAGE.descr))]  # fmt: skip
    times: dict = {run: [] for run in runs}
    for k in range(reps):
        for run in runs if k % 2 == 0 else runs[::-1]:  # (which runs first alternates)
            build, name, threads, dtype = run
            out = subprocess.run([builds[build], "-c", LOAD_ONCE, str(files[name]), str(threads), dtype],
                                 capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
            times[run].append(float(out[0]))
    results: dict = {}
    for (build, name, threads, dtype), t in times.items():
        plural = "s" if threads > 1 else ""
        key = f"{build} {name} {threads} thread{plural} {'preset' if dtype == 'preset' else 'S5'}"
        size = files[name].stat().st_size if name == "coverage" else files["coverage"].stat().st_size
        results[key] = {"median_s": median(t), "min_s": min(t), "max_s": max(t), "times_s": t,
                        "text_gb_per_s": size / median(t) / 1e9}  # fmt: skip
    return results


def widths_lines(results: dict) -> list[str]:
    lines = ["| run | median s | min-max s | GB/s of text |", "|---|---|---|---|"]
    for key, r in results.items():
        lines.append(
            f"| {key} | {r['median_s']:.3f} | {r['min_s']:.3f}-{r['max_s']:.3f} | {r['text_gb_per_s']:.3f} |"
        )
    lines.append("")
    for build in ("after", "before"):
        for name in ("coverage", "coverage.bgzf.gz"):
            for threads in ("1 thread", "2 threads"):
                preset, given = (results.get(f"{build} {name} {threads} {d}") for d in ("preset", "S5"))
                if preset and given:
                    lines.append(f"- {build}, {name}, {threads}: preset / given width "
                                 f"{preset['median_s'] / given['median_s']:.3f}")  # fmt: skip
    return lines


def report(name: str, command: str, results: dict, table: str) -> None:
    print(table)
    print(f"\nsaved in {save(name, command, results, table)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path("/tmp/ndshm-bench"))
    parser.add_argument("--skip-numpy", action="store_true", help="numpy takes ~15 s per GB per run")
    parser.add_argument("--gzip-only", action="store_true", help="only the .gz ratios (loadtxt-gzip.*)")
    pairs_help = "only numpy.loadtxt vs ndshm on one thread, in interleaved pairs (loadtxt-numpy.*)"
    parser.add_argument("--numpy-pairs", action="store_true", help=pairs_help)
    parser.add_argument("--widths", action="store_true", help="only the width pass's cost (loadtxt-widths.*)")
    parser.add_argument(
        "--before", metavar="PYTHON", help="--widths: also time the build this python imports"
    )
    args = parser.parse_args()
    files = generate(args.data, args.size_mb * 10**6)
    plain, gzipped = ("coverage", "matrix"), ("coverage.gz", "coverage.bgzf.gz")
    timed_files = ("coverage", "coverage.bgzf.gz") if args.widths else gzipped if args.gzip_only else plain
    for name in timed_files if args.widths or args.gzip_only or args.numpy_pairs else plain + gzipped:
        cache_as_read(files[name])
    command = "python bench/bench_loadtxt.py " + " ".join(sys.argv[1:])
    if args.gzip_only:
        results = {name: gzip_ratio(files[name], args.reps) for name in gzipped}
        report("loadtxt-gzip", command, results, "\n".join(gzip_lines(results)))
        return
    if args.widths:
        results = widths(files, args.reps, args.before)
        report("loadtxt-widths", command, results, "\n".join(widths_lines(results)))
        return
    if args.numpy_pairs:
        results = {kind: numpy_ratio(files[kind], kind, args.reps) for kind in plain}
        report("loadtxt-numpy", command, results, "\n".join(numpy_lines(results)))
        return
    readers = {
        "ndshm 1 thread": read_ndshm(1),
        "ndshm 2 threads": read_ndshm(2),
        "pandas c": read_pandas("c"),
        "pandas pyarrow": read_pandas("pyarrow"),
        "pyarrow.csv": read_pyarrow,
        "polars": read_polars,
    }
    if not args.skip_numpy:
        readers = {"numpy.loadtxt": read_numpy, **readers}
    results: dict = {}
    for kind in plain:
        path = files[kind]
        size = path.stat().st_size
        reference = ndshm.loadtxt(path, **(PRESET if kind == "coverage" else {}))
        assert reference.dtype == (COVERAGE if kind == "coverage" else np.float64)
        results[kind] = {"bytes": size}
        for name, reader in readers.items():
            times = []
            for _ in range(args.reps):
                elapsed, got = timed(reader, path, kind)
                times.append(elapsed)
                assert got.dtype == reference.dtype and got.shape == reference.shape, name
                assert np.array_equal(got, reference), name
                del got
            results[kind][name] = {"median_s": median(times), "gb_per_s": size / median(times) / 1e9}
        del reference
    for name in ("coverage.gz", "coverage.bgzf.gz"):  # BGZF: members inflated on all cores
        results[name] = gzip_ratio(files[name], args.reps)
    results["peak_memory"] = {
        "coverage": peak_memory(files["coverage"], "coverage"),
        "coverage.gz": peak_memory(files["coverage.gz"], "coverage"),
    }

    lines = []
    for kind in plain:
        r = results[kind]
        fastest_peer = min(
            v["median_s"]
            for k, v in r.items()
            if k not in ("bytes",) and not k.startswith(("ndshm", "numpy"))
        )
        lines += [f"## {kind} ({r['bytes'] / 1e9:.2f} GB)", ""]
        lines += ["| reader | median s | GB/s | ndshm 2 threads is x faster |", "|---|---|---|---|"]
        for name, v in r.items():
            if name == "bytes":
                continue
            lines.append(f"| {name} | {v['median_s']:.3f} | {v['gb_per_s']:.3f} | "
                         f"{v['median_s'] / r['ndshm 2 threads']['median_s']:.2f} |")  # fmt: skip
        if "numpy.loadtxt" in r:
            lines.append(
                "\nndshm 1 thread vs numpy.loadtxt: "
                f"{r['numpy.loadtxt']['median_s'] / r['ndshm 1 thread']['median_s']:.1f}x"
            )
        lines.append(
            f"ndshm 2 threads vs fastest peer: {fastest_peer / r['ndshm 2 threads']['median_s']:.2f}x\n"
        )
    lines += gzip_lines(results)
    lines.append("## Peak memory (RssAnon + RssShmem over the process's baseline)\n")
    for name, m in results["peak_memory"].items():
        lines.append(f"- {name}: output {m['output_mib']:.0f} MiB, peak {m['peak_mib']:.0f} MiB, "
                     f"over the output {m['over_output_mib']:.0f} MiB")  # fmt: skip
    report("loadtxt", command, results, "\n".join(lines))


if __name__ == "__main__":
    os.environ.setdefault("NDSHM_SESSION", f"bench-{os.getpid()}")
    main()
