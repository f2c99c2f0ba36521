"""Shared arrays: attach latency, creation cost, and a 1 GiB child-to-parent hand-over vs the peers.

Run: python bench/bench_share.py [--handover-gib 1] [--reps 5] [--only attach,create,handover]
Writes bench/results/<date>-<machine>/share.{json,md}. Medians of --reps runs, warm, one process tree.

python bench/bench_share.py --against SITE [--rounds 6]: attach and create of this ndshm against
another build (installed with pip install --target SITE), each run in a fresh process, the two in
turn (which goes first alternates); writes share-against.{json,md}: medians over the rounds, their
spread, and the ratio this / peer with the spread of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import json
import mmap
import multiprocessing as mp
import os
import subprocess
import sys
import time
from multiprocessing import shared_memory

import numpy as np

import ndshm
from _common import median, save

COVERAGE = ndshm.PRESETS["coverage5"]["dtype"]
PAGE = 4096


# ---------------------------------------------------------------- attach latency (in a fresh process)
def _attach_worker(handles: list[str], out) -> None:
    times = []
    for text in handles:
        t0 = time.perf_counter()
        array = ndshm.attach(text)
        times.append(time.perf_counter() - t0)
        assert array.nbytes > 0
        del array  # unmapped: the next attach maps afresh
    out.send(times)


def bench_attach(reps: int) -> dict:
    results = {}
    ctx = mp.get_context("fork")
    for label, nbytes in [("1 KiB", 2**10), ("1 MiB", 2**20), ("64 MiB", 2**26), ("1 GiB", 2**30),
                          ("4 GiB", 2**32)]:  # fmt: skip
        array = ndshm.empty(nbytes, "u1")
        handles = [ndshm.handle(array) for _ in range(reps * 5)]
        receiver, sender = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_attach_worker, args=(handles, sender))
        child.start()
        times = receiver.recv()
        child.join()
        del array
        steady = sorted(times[1:])  # the first attach also connects this process to the broker
        results[label] = {
            "median_us": median(steady) * 1e6,
            "p90_us": steady[int(0.9 * (len(steady) - 1))] * 1e6,
            "first_us": times[0] * 1e6,
        }
    return results


# ---------------------------------------------------------------- creation vs first touch
def _touch_anonymous_4k(nbytes: int) -> float:
    # Plain anonymous memory: 4 KiB pages (the kernel's THP mode here is "madvise").
    t0 = time.perf_counter()
    m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    a = np.frombuffer(m, "u1")
    a[::PAGE] = 0
    elapsed = time.perf_counter() - t0
    del a
    m.close()
    return elapsed


def _touch_numpy(nbytes: int) -> float:
    # np.empty madvises huge pages for large arrays: 512x fewer page faults than 4 KiB pages.
    t0 = time.perf_counter()
    a = np.empty(nbytes, "u1")
    a[::PAGE] = 0
    return time.perf_counter() - t0


def _create(nbytes: int, touch: bool) -> float:
    t0 = time.perf_counter()
    a = ndshm.empty(nbytes, "u1")
    if touch:
        a[::PAGE] = 0
    elapsed = time.perf_counter() - t0
    del a
    return elapsed


def bench_create(reps: int) -> dict:
    results = {}
    for label, nbytes in [("1 MiB", 2**20), ("64 MiB", 2**26), ("1 GiB", 2**30)]:
        anon = median([_touch_anonymous_4k(nbytes) for _ in range(reps)])
        thp = median([_touch_numpy(nbytes) for _ in range(reps)])
        create = median([_create(nbytes, False) for _ in range(reps)])
        create_touch = median([_create(nbytes, True) for _ in range(reps)])
        results[label] = {
            "anonymous_4k_first_touch_s": anon,
            "numpy_empty_first_touch_s": thp,
            "ndshm_empty_s": create,
            "ndshm_empty_then_touch_s": create_touch,
            "ratio_create_vs_anonymous_4k": create / anon,
            "ratio_create_and_touch_vs_anonymous_4k": create_touch / anon,
            "ratio_create_and_touch_vs_numpy": create_touch / thp,
        }
    return results


# ---------------------------------------------------------------- 1 GiB hand-over, child -> parent
def _data(rows: int) -> np.ndarray:
    a = np.zeros(rows, COVERAGE)
    a["pos"] = np.arange(rows, dtype="<i4")
    a["chr"] = b"chr1"
    return a


def _child_pickle(rows, q, _):
    private = _data(rows)
    q.put(time.perf_counter())
    q.put(private)


def _child_ndshm_share(rows, q, _):
    private = _data(rows)
    q.put(time.perf_counter())
    q.put(ndshm.share(private))


def _child_ndshm_native(rows, q, _):
    array = ndshm.empty(rows, COVERAGE)  # built in shared memory from the start (as ndshm.loadtxt does)
    array["pos"] = np.arange(rows, dtype="<i4")
    array["chr"] = b"chr1"
    q.put(time.perf_counter())
    q.put(array)


def _child_stdlib(rows, q, done):
    private = _data(rows)
    q.put(time.perf_counter())
    shm = shared_memory.SharedMemory(create=True, size=private.nbytes)
    np.ndarray(private.shape, private.dtype, buffer=shm.buf)[:] = private
    q.put((shm.name, private.shape, private.dtype.descr))
    done.get()
    shm.close()
    shm.unlink()


def _child_sharedarray(rows, q, done):
    import SharedArray

    private = _data(rows)
    q.put(time.perf_counter())
    name = f"shm://ndshm-bench-{time.monotonic_ns()}"
    # SharedArray keeps no structured fields: share the rows as opaque records.
    shared = SharedArray.create(name, private.shape, dtype=f"V{COVERAGE.itemsize}")
    shared[:] = private.view(f"V{COVERAGE.itemsize}")
    q.put(name)
    done.get()
    SharedArray.delete(name)


def _receive(method: str, q, done) -> np.ndarray:
    if method in ("pickle", "ndshm.share", "ndshm (native)"):
        return q.get()
    if method == "stdlib":
        name, shape, descr = q.get()
        shm = shared_memory.SharedMemory(name=name)
        array = np.ndarray(shape, np.dtype([tuple(f) for f in descr]), buffer=shm.buf)
        return array, shm
    import SharedArray

    return SharedArray.attach(q.get()).view(COVERAGE)


CHILDREN = {
    "ndshm (native)": _child_ndshm_native,
    "ndshm.share": _child_ndshm_share,
    "pickle": _child_pickle,
    "stdlib": _child_stdlib,
    "SharedArray": _child_sharedarray,
}


def bench_handover(gib: float, reps: int) -> dict:
    rows = int(gib * 2**30) // COVERAGE.itemsize
    ctx = mp.get_context("fork")
    results = {}
    for method, target in CHILDREN.items():
        times = []
        for _ in range(reps):
            q, done = ctx.Queue(), ctx.Queue()
            child = ctx.Process(target=target, args=(rows, q, done))
            child.start()
            start = q.get()
            received = _receive(method, q, done)
            array = received[0] if isinstance(received, tuple) else received
            assert array.shape == (rows,) and array[rows - 1]["pos"] == rows - 1
            times.append(time.perf_counter() - start)
            del array, received
            done.put("done")
            child.join()
        results[method] = {"median_s": median(times)}
    fastest = results["ndshm (native)"]["median_s"]
    for r in results.values():
        r["ratio_vs_ndshm_native"] = r["median_s"] / fastest
    return results


# ---------------------------------------------------------------- this build against another, in turn
# What each compared measure is, and where it sits in a run's results.
ATTACH_SIZES = ("1 KiB", "1 MiB", "64 MiB", "1 GiB", "4 GiB")
CREATE_KEYS = (("ndshm_empty_s", "ndshm.empty s"), ("ndshm_empty_then_touch_s", "empty+touch s"))
MEASURES = [("attach", size, "median_us", "attach us") for size in ATTACH_SIZES]
MEASURES += [
    ("create", size, key, label) for size in ("1 MiB", "64 MiB", "1 GiB") for key, label in CREATE_KEYS
]


def _run(reps: int, site: str | None) -> dict:
    env = dict(os.environ)
    if site is not None:  # PYTHONPATH comes before site-packages: the peer's ndshm is imported
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [site, env.get("PYTHONPATH")]))
    command = [sys.executable, __file__, "--only", "attach,create", "--reps", str(reps), "--raw"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def compare(site: str, rounds: int, reps: int) -> tuple[dict, str]:
    runs: dict[str, list[dict]] = {"this": [], "peer": []}
    for r in range(rounds):
        for who in ("this", "peer") if r % 2 == 0 else ("peer", "this"):
            runs[who].append(_run(reps, site if who == "peer" else None))
    files = {who: {run["ndshm"] for run in runs[who]} for who in runs}
    assert len(files["this"]) == len(files["peer"]) == 1 and files["this"] != files["peer"], files
    results = {"this": files["this"].pop(), "peer": files["peer"].pop(), "rounds": rounds, "measures": {}}
    lines = [f"this: `{results['this']}`, peer: `{results['peer']}`; {rounds} rounds in turn, medians, "
             "[min-max] over the rounds", "",
             "| measure | size | this | peer | this / peer (rounds' ratios) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for part, size, key, label in MEASURES:
        this = [run[part][size][key] for run in runs["this"]]
        peer = [run[part][size][key] for run in runs["peer"]]
        ratios = [a / b for a, b in zip(this, peer, strict=True)]
        results["measures"][f"{part} {size} {key}"] = {"this": this, "peer": peer, "ratios": ratios}
        lines.append(
            f"| {label} | {size} | {median(this):.4g} [{min(this):.4g}-{max(this):.4g}] | "
            f"{median(peer):.4g} [{min(peer):.4g}-{max(peer):.4g}] | "
            f"{median(this) / median(peer):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |"
        )
    return results, "\n".join(lines)


def _tables(attach: dict, create: dict, handover: dict, handover_gib: float) -> str:
    lines = []
    if attach:
        lines += ["## Attach (handle -> usable ndarray, fresh process, no cached mapping)", "",
                  "| size | median us | p90 us | first attach in the process us |",
                  "|---|---|---|---|"]  # fmt: skip
        lines += [
            f"| {k} | {v['median_us']:.1f} | {v['p90_us']:.1f} | {v['first_us']:.0f} |"
            for k, v in attach.items()
        ]
        lines.append("")
    if create:
        lines += ["## Creation vs first touch of fresh anonymous memory (seconds; ratios)", "",
                  "| size | anon 4K touch | np.empty+touch (THP) | ndshm.empty | ndshm.empty+touch | "
                  "empty/anon | empty+touch/anon | empty+touch/np.empty |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        lines += [
            f"| {k} | {v['anonymous_4k_first_touch_s']:.4f} | {v['numpy_empty_first_touch_s']:.4f} | "
            f"{v['ndshm_empty_s']:.4f} | {v['ndshm_empty_then_touch_s']:.4f} | "
            f"{v['ratio_create_vs_anonymous_4k']:.2f} | {v['ratio_create_and_touch_vs_anonymous_4k']:.2f} | "
            f"{v['ratio_create_and_touch_vs_numpy']:.2f} |"
            for k, v in create.items()
        ]
        lines.append("")
    if handover:
        lines += [f"## Hand-over of a {handover_gib:g} GiB structured array, child -> parent", "",
                  "| method | median s | x ndshm (native) |", "|---|---|---|"]  # fmt: skip
        lines += [
            f"| {k} | {v['median_s']:.4f} | {v['ratio_vs_ndshm_native']:.1f} |" for k, v in handover.items()
        ]
    return "\n".join(lines).rstrip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--handover-gib", type=float, default=1.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", default="attach,create,handover", help="the parts to run, comma-separated")
    parser.add_argument("--against", metavar="SITE", help="compare attach and create with the ndshm in SITE")
    parser.add_argument("--rounds", type=int, default=6, help="with --against: runs of each build, in turn")
    parser.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)  # one run's JSON on stdout
    args = parser.parse_args()
    command = "python bench/bench_share.py " + " ".join(sys.argv[1:])
    if args.against:
        results, table = compare(args.against, args.rounds, args.reps)
        print(table)
        print(f"\nsaved in {save('share-against', command.strip(), results, table)}")
        return
    parts = set(args.only.split(","))
    attach = bench_attach(args.reps) if "attach" in parts else {}
    create = bench_create(args.reps) if "create" in parts else {}
    handover = bench_handover(args.handover_gib, max(3, args.reps // 2)) if "handover" in parts else {}
    if args.raw:
        print(json.dumps({"ndshm": ndshm.__file__, "attach": attach, "create": create}))
        return
    table = _tables(attach, create, handover, args.handover_gib)
    print(table)
    folder = save("share", command.strip(), {"attach": attach, "create": create, "handover": handover},
                  table)  # fmt: skip
    print(f"\nsaved in {folder}")


if __name__ == "__main__":
    main()
