"""Small files in the formats users have, for every preset: real contig names (unplaced, alt and HLA
contigs of GRCh37/GRCh38, chrM, a spike-in), comment and track lines; plain, gzip or BGZF."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
from Bio import bgzf

import ndshm

# Contigs in the order a sorted file lists them; the longest name is 22 bytes.
CONTIGS = ["chr1", "chr10", "chrX", "chrM", "chrUn_gl000220", "chrUn_KI270302v1", "chr1_KI270706v1_random",
           "HLA-DRB1*15:01:01:01", "chrEBV", "lambda"]  # fmt: skip
LONGEST = max(map(len, CONTIGS))


def _row(preset: str, contig: str, i: int) -> str:
    pos, c, t = 10_000 + 37 * i, i % 23, i % 7
    pct = f"{100 * c / (c + t):.6g}" if c + t else "0"
    if preset == "coverage5":
        return f"{contig}\t{pos}\t{pct}\t{c}\t{t}\n"
    if preset == "bismark-cov":  # chr start end pct c t (Bismark's bismark2bedGraph --counts)
        return f"{contig}\t{pos}\t{pos}\t{pct}\t{c}\t{t}\n"
    if preset == "bismark-cytosine":  # chr pos strand c t context trinucleotide
        context, tri = [("CG", "CGA"), ("CHG", "CAG"), ("CHH", "CTT")][i % 3]
        return f"{contig}\t{pos}\t{'+-'[i % 2]}\t{c}\t{t}\t{context}\t{tri}\n"
    return f"{contig}\t{pos}\t{pos + 1}\t{pct}\n"  # bedgraph


def text(preset: str, rows_per_contig: int = 40, contigs: list[str] | None = None) -> str:
    """A file of preset's format: a track line first for bedGraph (read with skiprows=1), comment
    lines, and every contig's rows in turn."""
    lines = (
        ['track type=bedGraph name="sample 1" description="CpG methylation"\n']
        if preset == "bedgraph"
        else []
    )
    lines.append("# written by the tests: real contig names, as a reference's assembly has them\n")
    for k, contig in enumerate(contigs or CONTIGS):
        lines += [_row(preset, contig, k * rows_per_contig + i) for i in range(rows_per_contig)]
        if k == 3:
            lines.append("# a comment between contigs\n")
    return "".join(lines)


def options(preset: str) -> dict:
    """The preset's loadtxt keywords, with skiprows=1 for the bedGraph track line."""
    return {**ndshm.PRESETS[preset], **({"skiprows": 1} if preset == "bedgraph" else {})}


def write(path: Path, data: str, kind: str) -> Path:
    """data as a plain (kind "plain"), gzip ("gz") or BGZF ("bgzf") file at path (+ ".gz")."""
    if kind == "plain":
        path.write_text(data)
        return path
    path = path.with_name(path.name + ".gz")
    if kind == "gz":
        path.write_bytes(gzip.compress(data.encode()))
    else:
        with bgzf.BgzfWriter(str(path), "wb") as f:
            f.write(data.encode())
    return path


def expected(preset: str, data: str) -> np.ndarray:
    """numpy.loadtxt's rows, chr as wide as the longest name in data (the width ndshm finds)."""
    opts = options(preset)
    dtype = opts["dtype"]
    lines = data.splitlines()[opts.get("skiprows", 0) :]
    width = max(len(line.split("\t")[0]) for line in lines if not line.startswith("#"))
    sized = np.dtype([(n, f"S{width}" if n == "chr" else dtype.fields[n][0]) for n in dtype.names])
    return np.atleast_1d(np.loadtxt(io.StringIO(data), **{**opts, "dtype": sized}))
