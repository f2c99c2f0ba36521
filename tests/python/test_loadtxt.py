"""ndshm.loadtxt against numpy.loadtxt: same dtype, shape and bytes, or both refuse the input."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import real_files
import workers
from Bio import bgzf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ndshm
from ndshm import _core

# the usual dtype of these files
COVERAGE = np.dtype([("chr", "S10"), ("pos", "<i4"), ("pct", "<f4"), ("c", "<i4"), ("t", "<i4")])


def _both(source, **kwargs):
    """(numpy's result or exception type, ndshm's result or exception type)."""
    results = []
    for load in (np.loadtxt, lambda s, **k: ndshm.loadtxt(s, truncate=True, **k)):
        data = source() if callable(source) else source
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                results.append(load(data, **kwargs))
            except (ValueError, TypeError) as error:
                results.append(type(error))
    return results


def _assert_same(expected, got):
    if isinstance(expected, type):
        kind = TypeError if issubclass(expected, TypeError) else ValueError
        assert isinstance(got, type) and issubclass(got, kind), f"numpy refused ({expected}); ndshm: {got!r}"
        return
    assert not isinstance(got, type), f"ndshm refused what numpy read: {expected!r}"
    if isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected)
        for e, g in zip(expected, got, strict=True):
            _assert_same(e, g)
        return
    assert type(got) is np.ndarray
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(expected).tobytes()


# ------------------------------------------------------------------ generated tables
NUMERIC = ["<i1", "<i2", ">i4", "<i4", "<i8", "<u1", "<u2", "<u4", ">u8", "<f4", ">f8", "<f8", "?"]


@st.composite
def cells(draw, kind: str) -> str:
    dt = np.dtype(kind)
    if dt.kind == "f":
        value = draw(st.floats(allow_nan=True, allow_infinity=True, width=64))
        text = draw(st.sampled_from([repr(value), f"{value:.3g}", f"{value:e}", f"{value:.17g}"]))
        if draw(st.booleans()) and not text.startswith("-"):
            text = "+" + text
    elif dt.kind in "iub":
        info = np.iinfo(dt) if dt.kind in "iu" else np.iinfo(np.int8)
        low, high = int(info.min), int(info.max)
        edges = st.sampled_from([low - 1, low, high, high + 1, 10**15 - 1, 10**15, -(10**15)])
        text = str(draw(st.one_of(st.integers(low - 2, high + 2), edges)))  # sometimes out of range
    else:
        # names as real assemblies have them, up to 40 bytes: often too long for the field (cut as numpy cuts)
        text = draw(st.text(alphabet="abcdefghXYZ0123456789_.*:-", min_size=1, max_size=40))
    pad = draw(st.sampled_from(["", " ", "  "]))
    return pad + text + pad


@st.composite
def tables(draw):
    structured = draw(st.booleans())
    if structured:
        kinds = draw(st.lists(st.sampled_from(NUMERIC + ["S4", "S8", "S22"]), min_size=1, max_size=5))
        dtype = np.dtype([(f"f{i}", k) for i, k in enumerate(kinds)])
    else:
        kind = draw(st.sampled_from(NUMERIC))
        kinds = [kind] * draw(st.integers(1, 5))
        dtype = np.dtype(kind)
    delimiter = draw(st.sampled_from([None, ",", "\t", ";"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [f"# header {i}" for i in range(draw(st.integers(0, 2)))]
    for _ in range(draw(st.integers(0, 12))):
        roll = draw(st.integers(0, 9))
        if roll == 0:
            lines.append("")
        elif roll == 1:
            lines.append("# a comment")
        else:
            row = [draw(cells(k)) for k in kinds]
            if delimiter is None:
                row = [c.strip() or "0" for c in row]
            line = (delimiter or draw(st.sampled_from([" ", "\t", " \t "]))).join(row)
            if draw(st.integers(0, 5)) == 0:
                line += " # trailing comment"
            lines.append(line)
    if draw(st.booleans()):  # 64 bytes per column after every row: the fast row path takes them
        lines.append("# " + "x" * 800)  # (else the general one; up to 12 columns)
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    return text, dtype, delimiter, len(kinds)


@settings(
    max_examples=int(os.environ.get("NDSHM_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(tables(), st.data())
def test_matches_numpy_on_generated_tables(table, data):
    text, dtype, delimiter, width = table
    options = {"dtype": dtype, "delimiter": delimiter}
    if data.draw(st.booleans()):
        options["skiprows"] = data.draw(st.integers(0, 3))
    if data.draw(st.booleans()):
        options["max_rows"] = data.draw(st.integers(0, 5))
    if data.draw(st.booleans()):
        options["ndmin"] = data.draw(st.integers(0, 2))
    if data.draw(st.booleans()):
        options["unpack"] = True
    if dtype.names is None and data.draw(st.booleans()):
        options["usecols"] = data.draw(st.lists(st.integers(-width, width - 1), min_size=1, max_size=3))
    expected, got = _both(lambda: io.StringIO(text), **options)
    _assert_same(expected, got)


# ------------------------------------------------------------------ chosen cases
CASES = {
    "coverage": (
        "chr1\t128713259\t82.14\t46\t10\nchr2\t5\t1.5\t1\t2\n",
        {"dtype": COVERAGE, "delimiter": "\t"},
    ),
    "bismark cov usecols": (
        "chr1\t10\t10\t50.0\t1\t1\n",
        {"dtype": COVERAGE, "delimiter": "\t", "usecols": (0, 1, 3, 4, 5)},
    ),
    "nan inf": ("nan -inf +Infinity 1e400 -1e-400 0.1\n", {}),
    "float32 via double": ("0.1 3.4028235e38 1e-46 16777217\n", {"dtype": "<f4"}),
    "int overflow": ("300\n", {"dtype": "i1"}),
    "negative unsigned": ("-1\n", {"dtype": "u4"}),
    "int from float text": ("1.0\n", {"dtype": int}),
    "bool from ints": ("0 1 2 -3\n", {"dtype": bool}),
    "ragged": ("1 2\n3\n", {}),
    "empty": ("", {}),
    "only comments": ("# a\n# b\n", {"ndmin": 2}),
    "usecols empty": ("", {"usecols": (0, 2)}),
    "single row": ("1 2 3\n", {}),
    "single column": ("1\n2\n", {"ndmin": 1}),
    "quotes": ('"1,5",2\n"3",4\n', {"delimiter": ",", "quotechar": '"', "dtype": "S4"}),
    "comments none": ("1 2\n", {"comments": None}),
    "whitespace comment (numpy refuses)": ("1 2\n", {"comments": " "}),
    "tab comment (numpy refuses)": ("1\t2\n", {"comments": "\t"}),
    "newline comment (numpy refuses)": ("1 2\n", {"comments": "\r"}),
    "quote as delimiter (numpy refuses)": ("1,2\n", {"delimiter": ",", "quotechar": ","}),
    "spaces in S fields": ("a , b\n", {"delimiter": ",", "dtype": "S3"}),
    "whitespace line with delimiter": ("1,2\n   \n3,4\n", {"delimiter": ","}),
    "nested dtype": ("1 2 3 4\n", {"dtype": [("a", "i2"), ("b", [("x", ">f8"), ("y", "u1", (2,))])]}),
    "negative usecols": ("1 2 3\n4 5 6\n", {"usecols": -1}),
    "skiprows beyond": ("1\n2\n", {"skiprows": 5}),
    "max_rows 0": ("1\n2\n", {"max_rows": 0}),
    "multi-char comment (numpy path)": ("1 2 // x\n", {"comments": "//"}),
    "converters (numpy path)": ("1 2\n", {"converters": {0: lambda s: float(s) * 2}}),
    "unicode dtype (numpy path)": ("ab cd\n", {"dtype": "U2"}),
    "complex (numpy path)": ("1+2j\n", {"dtype": complex}),
}


@pytest.mark.parametrize("name", CASES)
def test_matches_numpy_on_chosen_cases(name):
    text, options = CASES[name]
    expected, got = _both(lambda: io.StringIO(text), **options)
    _assert_same(expected, got)
    expected, got = _both(text.splitlines(), **options)
    _assert_same(expected, got)


# Cells at the edges of the fast row path (8 digits at a time, at most 15) and of each type's range.
EDGE_CELLS = [
    "0", "-0", "+0", "+5", "-5", "7", "12345678", "123456789", "999999999999999", "1000000000000000",
    "-999999999999999", "00000000000000012", "127", "128", "-128", "-129", "255", "256", "32767", "32768",
    "65535", "65536", "2147483647", "2147483648", "-2147483648", "-2147483649", "4294967295", "4294967296",
    "9223372036854775807", "9223372036854775808", "18446744073709551615", "18446744073709551616",
    "1.5", ".5", "5.", "-.5", "+.5", ".", "-", "+", "", "1e5", "1E-5", "1.5e+3", "nan", "-inf", "Infinity",
    "0.1", "77.84", "0.1234567890123", "0.12345678901234567", "123456789.123456", "1234567.12345678",
    "3.4028235e38", "16777217", "0x10", "1_000", "1,5", " 5", "5 ", "\v5", "5\f", "abc", "chr1",
    "chrUn_KI270302v1",
]  # fmt: skip


@pytest.mark.parametrize("delimiter", [None, "\t", ","])
@pytest.mark.parametrize("kind", NUMERIC + ["S4", "S16", "S20"])
def test_fast_row_path_matches_numpy_on_edge_cells(kind, delimiter):
    """Each edge cell in a row of its own, with 64 bytes of text per column after it (where the fast
    row path runs; rows it refuses go to the general one): numpy's value or numpy's refusal, cell by cell."""
    tail = "# " + "x" * 200 + "\n"
    for cell in EDGE_CELLS:
        if delimiter is None and (cell.strip() == "" or "," in cell):
            continue
        for line in [cell, f"{cell}{delimiter or ' '}1", f"1{delimiter or ' '}{cell}"]:
            width = line.count(delimiter) + 1 if delimiter else len(line.split())
            dtype = np.dtype([(f"f{i}", kind) for i in range(width)])
            for newline in ["\n", "\r\n"]:
                text = newline.join([line] * 3) + newline + tail
                expected, got = _both(lambda text=text: io.StringIO(text), dtype=dtype, delimiter=delimiter)
                try:
                    _assert_same(expected, got)
                except AssertionError as error:
                    raise AssertionError(f"{kind} {delimiter!r} {text!r}: {error}") from None


def test_paths_gzip_bz2_xz_and_binary_files(tmp_path):
    import bz2
    import lzma

    text = "".join(f"chr{i % 3}\t{i}\t{i / 7:.4f}\t{i % 50}\t{i % 9}\n" for i in range(20_000))
    expected = np.loadtxt(io.StringIO(text), dtype=COVERAGE, delimiter="\t")
    plain = tmp_path / "x.cov"
    plain.write_text(text)
    (tmp_path / "x.cov.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "x.cov.bz2").write_bytes(bz2.compress(text.encode()))
    (tmp_path / "x.cov.xz").write_bytes(lzma.compress(text.encode()))
    for path in ["x.cov", "x.cov.gz", "x.cov.bz2", "x.cov.xz"]:
        got = ndshm.loadtxt(tmp_path / path, dtype=COVERAGE, delimiter="\t")
        assert ndshm.is_shared(got) and got.tobytes() == expected.tobytes()
    with open(plain, "rb") as f:
        assert ndshm.loadtxt(f, dtype=COVERAGE, delimiter="\t").tobytes() == expected.tobytes()
    # Concatenated gzip members (as BGZF files are) read as one stream.
    half = len(text) // 2
    cut = text.rindex("\n", 0, half) + 1
    (tmp_path / "two.gz").write_bytes(gzip.compress(text[:cut].encode()) + gzip.compress(text[cut:].encode()))
    assert ndshm.loadtxt(tmp_path / "two.gz", dtype=COVERAGE, delimiter="\t").tobytes() == expected.tobytes()
    # BGZF (bgzip): members of at most 64 KiB with their size in a "BC" extra field, inflated in parallel.
    with bgzf.BgzfWriter(tmp_path / "x.bgzf.gz", "wb") as out:  # Biopython's writer: BGZF as bgzip writes it
        out.write(text.encode())
    assert (tmp_path / "x.bgzf.gz").read_bytes()[12:14] == b"BC"
    got = ndshm.loadtxt(tmp_path / "x.bgzf.gz", dtype=COVERAGE, delimiter="\t")
    assert got.tobytes() == expected.tobytes()
    # Zero bytes after the last member (padding some writers add) end the data, as in Python's gzip.
    (tmp_path / "padded.gz").write_bytes(gzip.compress(text.encode()) + b"\0" * 1000)
    assert gzip.decompress((tmp_path / "padded.gz").read_bytes()) == text.encode()
    (tmp_path / "padded.bgzf.gz").write_bytes((tmp_path / "x.bgzf.gz").read_bytes() + b"\0" * 1000)
    for name in ["padded.gz", "padded.bgzf.gz"]:
        got = ndshm.loadtxt(tmp_path / name, dtype=COVERAGE, delimiter="\t")
        assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize(
    ("delimiter", "comments"),
    [(",", "-"), (",", "."), (",", "7"), (None, "-"), (None, "+"), ("-", "#"), ("+", "#"), (".", "#")],
)
def test_delimiters_and_comment_characters_that_numbers_use(delimiter, comments):
    """A sign, point or digit as delimiter or comment character is never taken into a number (the fast
    row path leaves such grammars to the general one)."""
    d = delimiter or " "
    rows = [f"3{d}4", f"-1{d}2", f"1{d}.7", f"1{d}{d}2{d}3", f"5{d}6", f"7{d}+8", f"1.2{d}3"]
    for row in rows:
        text = f"3{d}4\n{row}\n3{d}4\n# {'x' * 100}\n"
        expected, got = _both(lambda text=text: io.StringIO(text), delimiter=delimiter, comments=comments)
        _assert_same(expected, got)


def test_gzip_with_shared_false_needs_no_broker(tmp_path):
    """shared=False gives private memory, even for a .gz file parsed into memory that grows: no broker
    is started (here: none can be), and dtypes numpy takes but a listing could not name work too."""
    path = tmp_path / "t.txt.gz"
    path.write_bytes(gzip.compress(b"1 2\n3 4\n"))
    code = (
        "import ndshm, numpy as np\n"
        f"a = ndshm.loadtxt({str(path)!r}, shared=False)\n"
        "assert not ndshm.is_shared(a) and a.tolist() == [[1, 2], [3, 4]]\n"
        "overlap = np.dtype({'names': ['a', 'b'], 'formats': ['<i4', '<i2'], 'offsets': [0, 0]})\n"
        f"b = ndshm.loadtxt({str(path)!r}, dtype=overlap, usecols=(0, 1), shared=False)\n"
        f"assert b.tobytes() == np.loadtxt({str(path)!r}, dtype=overlap, usecols=(0, 1)).tobytes()\n"
    )
    env = {**os.environ, "NDSHM_BROKER": "/nonexistent", "NDSHM_SESSION": f"nobroker-{os.getpid()}"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("text", "options"),
    [
        ("", {}),
        ("# only a comment\n", {"ndmin": 2}),
        ("1 2\n3 4\n", {"max_rows": 0}),
        ("1 2\n3 4\n", {"max_rows": 1}),
        ("1 2\n3 4\n", {"skiprows": 5}),
        ("1 2 3\n4 5 6\n", {"usecols": (-1, 0), "unpack": True}),
        ("x 1 2.5\ny 3 4.5\n", {"dtype": [("n", "S1"), ("i", "<i4"), ("f", "<f8")]}),
        ("1 2\n3\n", {}),
    ],
)
@pytest.mark.parametrize("shared", [True, False])
def test_gzip_streams_in_one_pass_as_numpy_reads_them(session, tmp_path, text, options, shared):
    """A .gz file is parsed block by block into memory that grows: numpy's results, empty inputs and
    errors included; shared=False gives ordinary memory; a failure leaves no segment (session fixture)."""
    path = tmp_path / "t.txt.gz"
    path.write_bytes(gzip.compress(text.encode()))
    expected, got = _both(lambda: io.StringIO(text), **options)
    _assert_same(expected, got)  # the reference, from text in memory
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            streamed = ndshm.loadtxt(path, shared=shared, **options)
        except ValueError as error:
            streamed = type(error)
    _assert_same(expected, streamed)
    for array in streamed if isinstance(streamed, list) else [streamed]:
        if isinstance(array, np.ndarray):
            assert ndshm.is_shared(array) == shared


def test_same_result_and_same_error_line_for_every_thread_count(tmp_path):
    rows = [f"{i} {i * 0.5} {i % 7}" for i in range(300_000)]
    path = tmp_path / "m.txt"
    path.write_text("\n".join(rows) + "\n")
    # one thread parses rows as it finds them into memory that grows; more count them first
    results = [ndshm.loadtxt(path, threads=t, shared=shared) for t in (1, 2, 3) for shared in (False, True)]
    assert all(np.array_equal(r, results[0]) for r in results)
    assert [ndshm.is_shared(r) for r in results] == [False, True] * 3
    assert results[0].flags.owndata  # private results are ordinary numpy memory, whatever the threads
    rows[250_000] = "1 2 oops"
    path.write_text("\n".join(rows) + "\n")
    for t in (1, 2, 3):
        with pytest.raises(ndshm.ParseError) as info:
            ndshm.loadtxt(path, threads=t)
        assert (info.value.line, info.value.column, info.value.text) == (250_001, 5, "oops")
        assert str(path) in str(info.value) and info.value.file == str(path)


@pytest.mark.skipif(not workers.huge_pages_expected(), reason="no huge pages for shared memory here")
@pytest.mark.parametrize("threads", [1, 2])
def test_loaded_arrays_get_huge_pages(tmp_path, threads, monkeypatch):
    monkeypatch.setenv("NDSHM_HUGE_PAGES", "1")  # unpaced: a huge page wherever the kernel gives one
    path = tmp_path / "m.txt"
    path.write_text("".join(f"{i} {i * 0.5} {i % 7}\n" for i in range(300_000)))  # 7.2 MB of float64
    loaded = ndshm.loadtxt(path, threads=threads)
    assert loaded.nbytes == 7_200_000 and loaded[-1, 0] == 299_999
    # one thread: the rows' 2 MiB ranges as it grows; two: those inside each one's half
    assert workers.huge_kib(loaded) >= (6 << 10 if threads == 1 else 4 << 10)


def test_errors_say_what_and_where_and_leave_nothing_behind(session, tmp_path):
    path = tmp_path / "bad.cov"
    path.write_text("chr1\t1\t2.5\t3\t4\nchr1\t1\tabc\t3\t4\n")
    with pytest.raises(
        ndshm.ParseError, match=r"bad.cov:2:8: could not convert string 'abc' to float32 at row 1, col"
    ) as info:
        ndshm.loadtxt(path, dtype=COVERAGE, delimiter="\t")
    assert isinstance(info.value, ValueError) and info.value.expected == "float32"
    assert _core.list_segments(session) == []  # no partial array left
    with pytest.raises(
        ndshm.ParseError, match="<lines>:1:1: 'chromosome_11' is longer than the S10 field: S13 holds"
    ):
        ndshm.loadtxt(["chromosome_11\t1\t2\t3\t4"], dtype=COVERAGE, delimiter="\t", truncate=False)
    with pytest.raises(FileNotFoundError):
        ndshm.loadtxt(tmp_path / "missing.txt")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(b"1 2\n" * 1000)[:-20])
    with pytest.raises(ValueError, match="truncated gzip"):
        ndshm.loadtxt(tmp_path / "broken.gz")


@pytest.mark.parametrize("delimiter", [None, ","])
def test_text_numpy_reads_by_other_rules_gets_numpy_s_answer(tmp_path, delimiter, session):
    s = delimiter or " "
    path = tmp_path / "mac.txt"
    # numpy takes "\r" alone for a line end (ndshm's parser reads "\n" and "\r\n"), and decodes the
    # text (UTF-8 for a file; an S field holds its Latin-1 bytes): numpy is asked. 40 rows follow the
    # odd byte (but in the first text), so that the fast path (64 bytes of text ahead) meets it too.
    rows = f"9{s}9\n" * 40
    cases = [f"1{s}2\r3{s}4\r", f"1{s}2\r3{s}4\r" + rows, f"1{s}2\n5{s}6\r7{s}8\n" + rows,
             "1\r2\n" + "9\n" * 40, f"1{s}2\n" * 40 + f"1{s}\u00a02\n"]  # fmt: skip
    for text in cases:
        path.write_bytes(text.encode())
        for threads in (1, 2):
            _assert_same(
                np.loadtxt(path, delimiter=delimiter),
                ndshm.loadtxt(path, delimiter=delimiter, threads=threads),
            )
    names = tmp_path / "names.txt"
    names.write_bytes(b"chr1\t1\n" * 40 + b"chr\xc3\xa9\t2\n")  # UTF-8
    dtype = [("chr", "S"), ("pos", "i4")]
    got = ndshm.loadtxt(names, delimiter="\t", dtype=dtype)
    _assert_same(np.loadtxt(names, delimiter="\t", dtype=[("chr", "S5"), ("pos", "i4")]), got)
    assert got["chr"][-1] == b"chr\xe9"  # numpy's Latin-1 byte
    del got
    for lines in (lambda: ["1 2", "3\u20034"], lambda: [b"1\xa02"], lambda: io.StringIO("\u30001 2\n")):
        _assert_same(np.loadtxt(lines()), ndshm.loadtxt(lines()))  # Unicode spaces
    with pytest.raises(ValueError, match="unquoted embedded newline"):  # numpy's refusal, in its words
        ndshm.loadtxt(["1,2\n3,4"], delimiter=",")
    assert _core.list_segments(session) == []
    # "\r" before "\r\n" only makes empty lines, which numpy skips: the same array, from ndshm's parser
    path.write_bytes(f"1{s}2\r\r\n3{s}4\r\n".encode())
    assert np.array_equal(ndshm.loadtxt(path, delimiter=delimiter), np.loadtxt(path, delimiter=delimiter))


def test_long_lines_bom_crlf_and_no_final_newline(tmp_path):
    wide = " ".join(str(i) for i in range(20_000))
    path = tmp_path / "w.txt"
    path.write_bytes(b"\xef\xbb\xbf" + (wide + "\r\n" + wide).encode())
    got = ndshm.loadtxt(path)
    assert got.shape == (2, 20_000) and got[1, -1] == 19_999


def test_shared_false_gives_ordinary_memory():
    a = ndshm.loadtxt(["1 2"], shared=False)
    assert not ndshm.is_shared(a) and a.tolist() == [1.0, 2.0]


PRESET_SAMPLES = {
    "coverage5": "chr1\t128713259\t82.14\t46\t10\nchr2\t5\t0.5\t1\t1\n",
    "bismark-cov": "chr1\t10\t10\t50.0\t1\t1\nchrX\t20\t20\t0\t0\t3\n",
    "bismark-cytosine": "chr1\t10\t+\t1\t2\tCG\tCGT\nchr1\t11\t-\t0\t0\tCHH\tCAA\n",
    "bedgraph": "#comment\nchr1\t0\t100\t1.5\nchr1\t100\t250\t-2\n",
}


@pytest.mark.parametrize("preset", sorted(ndshm.PRESETS))
def test_every_preset_reads_its_format_as_numpy_does(preset, tmp_path):
    path = tmp_path / f"sample.{preset}.gz"
    path.write_bytes(gzip.compress(PRESET_SAMPLES[preset].encode()))
    expected = np.loadtxt(io.StringIO(PRESET_SAMPLES[preset]), **workers.numpy_preset(preset, 4))
    got = ndshm.loadtxt(path, **ndshm.PRESETS[preset])
    _assert_same(expected, got)


def _preset_rows(preset, rows, seed):
    """rows lines of a preset's format with the values and line ends that try the parser's fast paths."""
    rng = np.random.default_rng(seed)
    ints = ["0", "9", "10", "46", "99999999", "123456789", "2147483647", "-5", "+7", "007", "-2147483648"]
    floats = ["82.14", "0.5", "-2", "+.5", "100.00", "1e3", "nan", "12345678.123", "-0.0", "5.", "3.14159265"]
    text = ["chr1", "chrX", "c", "chr22_KI27", ""]
    kinds = {  # the file's columns (a bismark .cov file has an end column that usecols leave out)
        "coverage5": "t i f i i",
        "bismark-cov": "t i i f i i",
        "bismark-cytosine": "t i s i i x x",
        "bedgraph": "t i i f",
    }[preset].split()
    pick = {"t": text, "i": ints, "f": floats, "s": ["+", "-"], "x": ["CG", "CHH", "CGT"]}
    columns = [np.array(pick[k])[rng.integers(len(pick[k]), size=rows)].tolist() for k in kinds]
    lines = []
    for r, fields in enumerate(zip(*columns, strict=True)):
        if r % 97 == 5:
            lines.append("# a comment\n" if r % 2 else "\n")
        lines.append("\t".join(fields) + ("\r\n" if r % 13 == 0 else "\n"))
    return lines


@pytest.mark.parametrize("preset", sorted(ndshm.PRESETS))
def test_every_preset_layout_reads_a_long_file_as_numpy_does(preset, tmp_path):
    # Long enough for the row program's compiled layouts (short samples take the general path only).
    path = tmp_path / f"long.{preset}"
    path.write_text("".join(_preset_rows(preset, 100_000, seed=len(preset))))
    assert path.stat().st_size > 2 << 20  # (1 MiB per thread at least: two threads parse it)
    expected = np.loadtxt(path, **workers.numpy_preset(preset, len("chr22_KI27")))
    for threads in (1, 2):
        _assert_same(expected, ndshm.loadtxt(path, threads=threads, **ndshm.PRESETS[preset]))


@pytest.mark.parametrize("preset", sorted(ndshm.PRESETS))
def test_every_preset_layout_names_a_bad_value_deep_in_the_file(preset, tmp_path):
    lines = _preset_rows(preset, 100_000, seed=1)
    row = next(i for i in range(90_000, 100_000) if not lines[i].startswith(("#", "\n")))
    fields = lines[row].rstrip("\r\n").split("\t")
    # every preset's second column is an int32 (numpy before 2.3 wraps the first, and ndshm with it)
    bad = "2147483648" if np.lib.NumpyVersion(np.__version__) >= "2.3.0" else "21474836x8"
    fields[1] = bad
    lines[row] = "\t".join(fields) + "\n"
    data_row = sum(not line.startswith(("#", "\n")) for line in lines[:row])
    path = tmp_path / f"bad.{preset}"
    path.write_text("".join(lines))
    assert path.stat().st_size > 2 << 20  # two threads: the bad row is in the second chunk
    column = len(fields[0]) + 2
    for threads in (1, 2):
        with pytest.raises(ndshm.ParseError) as error:
            ndshm.loadtxt(path, threads=threads, **ndshm.PRESETS[preset])
        where = f"bad.{preset}:{row + 1}:{column}: could not convert string '{bad}' to int32"
        assert f"{where} at row {data_row}, column 2." in str(error.value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(0, 4000), max_size=6), skiprows=st.integers(0, 40))
def test_byte_ranges_split_a_file_into_its_lines(tmp_path, cuts, skiprows):
    path = tmp_path / "t.tsv"
    lines = ["# head", "", *(f"{i}\t{i * 0.25}\t{'x' * (i % 9)}" for i in range(120)), "# tail", "7\t8\t\r"]
    path.write_bytes(("\ufeff" + "\n".join(lines)).encode())
    options = {
        "dtype": [("a", "<i8"), ("b", "<f4"), ("s", "S9")],
        "delimiter": "\t",
        "skiprows": skiprows,
        "ndmin": 1,
    }
    whole = ndshm.loadtxt(path, **options)
    bounds = [0, *sorted(cuts), -1]
    parts = [ndshm.loadtxt(path, byte_range=r, **options) for r in zip(bounds, bounds[1:], strict=False)]
    got = np.concatenate(parts)
    assert got.dtype == whole.dtype and got.tobytes() == whole.tobytes()


def test_byte_range_errors_name_the_line_in_the_whole_file(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("".join(f"{i} 1.5\n" if i != 700 else "700 oops\n" for i in range(1000)))
    with pytest.raises(ndshm.ParseError) as whole:
        ndshm.loadtxt(path)
    with pytest.raises(ndshm.ParseError) as part:
        ndshm.loadtxt(path, byte_range=(3000, 6000))
    assert (part.value.line, part.value.column) == (701, 5)
    # numpy's "at row" counts the range's rows: the range's third row is the file's 701st
    assert str(part.value) == str(whole.value).replace("at row 700,", f"at row {700 - 389},")
    for bad in ({"max_rows": 3}, {"converters": {0: float}}, {"quotechar": '"'}):
        with pytest.raises(ValueError, match="byte_range needs"):
            ndshm.loadtxt(path, byte_range=(0, 10), **bad)
    with pytest.raises(ValueError, match="byte_range needs"):
        ndshm.loadtxt(io.StringIO("1\n"), byte_range=(0, 10))
    packed = tmp_path / "bad.txt.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(ValueError, match="byte_range needs an uncompressed"):
        ndshm.loadtxt(packed, byte_range=(0, 10))
    with pytest.raises(ValueError, match="byte offset from 0"):
        ndshm.loadtxt(path, byte_range=(-5, 10))


# ------------------------------------------------------------------ string widths
LONG_NAMES = [
    "chr1",
    "chrUn_gl000220",
    "chrUn_KI270302v1",
    "chr1_KI270706v1_random",
    "HLA-DRB1*15:01:01:01",
    "chrM",
]


def _named_rows(rows: int) -> str:
    return "".join(
        f"{LONG_NAMES[i % 6] if i != rows - 7 else 'x' * 40}\t{i}\t{i % 100}.5\t{i % 9}\t1\n"
        for i in range(rows)
    )


def test_too_short_s_fields_cut_as_numpy_does_with_one_warning(tmp_path, session):
    path = tmp_path / "named.cov"
    path.write_text(_named_rows(120_000))  # 2 threads' worth, and the one-pass path on one
    expected = np.loadtxt(path, dtype=COVERAGE, delimiter="\t")
    for threads in (1, 2):
        with pytest.warns(ndshm.TruncationWarning) as caught:
            got = ndshm.loadtxt(path, dtype=COVERAGE, delimiter="\t", threads=threads)
        assert len(caught) == 1 and issubclass(ndshm.TruncationWarning, UserWarning)
        assert str(caught[0].message).startswith(
            f"{path}:2:1: 'chrUn_gl000220' was cut to the 'chr' field's width, as numpy does; "
            "80001 value(s) cut in all; chr S40 would hold them all"
        )
        _assert_same(expected, got)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _assert_same(
                expected, ndshm.loadtxt(path, dtype=COVERAGE, delimiter="\t", threads=threads, truncate=True)
            )
        with pytest.raises(
            ndshm.ParseError, match=r"named.cov:2:1: 'chrUn_gl000220' is longer than the S10 field"
        ):
            ndshm.loadtxt(path, dtype=COVERAGE, delimiter="\t", threads=threads, truncate=False)
    gz = tmp_path / "named.cov.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.warns(ndshm.TruncationWarning, match="named.cov.gz:2:1: 'chrUn_gl000220'"):
        _assert_same(expected, ndshm.loadtxt(gz, dtype=COVERAGE, delimiter="\t"))
    begin = len("".join(path.read_text().splitlines(keepends=True)[:60000]))
    with pytest.warns(ndshm.TruncationWarning, match=r"named.cov:60002:1: 'chrUn_gl000220'"):
        ndshm.loadtxt(path, dtype=COVERAGE, delimiter="\t", byte_range=(begin, -1))
    del got
    assert _core.list_segments(session) == []  # (the failed loads left nothing)


@pytest.mark.parametrize("source", ["plain", "gz", "bgzf", "lines", "one thread", "range"])
def test_s_fields_without_a_size_are_as_wide_as_their_longest_value(source, tmp_path):
    text = "# track\n" + _named_rows(100_000)
    path = tmp_path / "named.cov"
    path.write_text(text)
    options = {
        "delimiter": "\t",
        "dtype": [("chr", "S"), ("pos", "<i4"), ("pct", "<f4"), ("c", "S"), ("t", "u1")],
    }
    if source == "gz":
        path = tmp_path / "named.cov.gz"
        path.write_bytes(gzip.compress(text.encode()))
    elif source == "bgzf":
        path = tmp_path / "named.bgzf.gz"
        with bgzf.BgzfWriter(path, "wb") as f:
            f.write(text.encode())
    elif source == "lines":
        path = text.splitlines(keepends=True)
    extra = {"threads": 1} if source == "one thread" else {"byte_range": (0, -1)} if source == "range" else {}
    got = ndshm.loadtxt(path, **options, **extra)
    sized = np.dtype([("chr", "S40"), ("pos", "<i4"), ("pct", "<f4"), ("c", "S1"), ("t", "u1")])
    assert got.dtype == sized
    _assert_same(np.loadtxt(io.StringIO(text), **{**options, "dtype": sized}), got)
    preset = ndshm.loadtxt(path, **ndshm.PRESETS["coverage5"], **extra)
    assert preset.dtype["chr"] == np.dtype("S40") and preset["chr"][-7] == b"x" * 40
    assert preset.dtype.names == ndshm.PRESETS["coverage5"]["dtype"].names


def test_s_without_a_size_elsewhere():
    # a plain S dtype: the longest value of every column, as numpy gives it
    rows = ["AAA,5-1", "BBBBB,0-3", "C,4-9"]
    _assert_same(np.loadtxt(rows, dtype="S", delimiter=","), ndshm.loadtxt(rows, dtype="S", delimiter=","))
    _assert_same(
        np.loadtxt(rows, dtype="S", delimiter=",", usecols=1),
        ndshm.loadtxt(rows, dtype="S", delimiter=",", usecols=1),
    )
    got = ndshm.loadtxt(rows, dtype=[("b", "S"), ("a", "S")], delimiter=",", usecols=(1, 0))
    assert got.dtype == np.dtype([("b", "S3"), ("a", "S5")]) and got[1].tolist() == (b"0-3", b"BBBBB")
    # numpy parses (converters): the width still comes from the text's plan when no converter touches it
    conv = ndshm.loadtxt(rows, dtype=[("a", "S"), ("b", "f8")], delimiter=",", converters={1: lambda s: 1.0})
    assert conv.dtype == np.dtype([("a", "S"), ("b", "f8")])  # (not a path: numpy's own b'')


def test_s_widths_through_numpy_s_parser_for_a_file(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("chrUn_gl000220,1\nchr1,2\n")
    got = ndshm.loadtxt(
        path, dtype=[("a", "S"), ("b", "f8")], delimiter=",", converters={1: lambda s: float(s) * 2}
    )
    assert got.dtype == np.dtype([("a", "S14"), ("b", "f8")]) and got.tolist() == [
        (b"chrUn_gl000220", 2.0),
        (b"chr1", 4.0),
    ]


# ------------------------------------------------------------------ real files
@pytest.mark.parametrize("kind", ["plain", "gz", "bgzf"])
@pytest.mark.parametrize("preset", sorted(ndshm.PRESETS))
def test_real_files_of_every_preset_keep_every_name(preset, kind, tmp_path):
    rows = 6000 if kind == "plain" else 40  # (plain: 2 MiB or more, two threads parse it)
    data = real_files.text(preset, rows)
    path = real_files.write(tmp_path / f"sample.{preset}", data, kind)
    want = real_files.expected(preset, data)
    for threads in (1, 2):
        got = ndshm.loadtxt(path, threads=threads, **real_files.options(preset))
        _assert_same(want, got)
    assert got.dtype["chr"] == np.dtype(f"S{real_files.LONGEST}")
    assert set(got["chr"]) == {c.encode() for c in real_files.CONTIGS}
    assert len(got) == rows * len(real_files.CONTIGS)
