"""`photoguard watch` as a nursery runs it: latency, burst throughput and memory of the whole process tree.

    uv run python benchmarks/bench_watch.py [--burst 100] [--settle 2] [--workers N] [--day 0] [--json]

A real watcher subprocess on a fresh home with two enrolled children (public-domain faces, tests/facekit.py).
Photos are 4000x3000 JPEGs with 5 faces (420 down to 48 px wide) pasted with facekit.scene, and a little
sensor-like noise so they decode and compress like real photos. Each photo is dropped atomically (rename
from a folder on the same disk), as a sync tool finishing a file would.

- latency: drop one photo into an idle watcher, time until its file appears in outbox/facebook/
  (includes the settle period, --settle, default 2 s as in production);
- burst: drop --burst photos at once, time until the last is done -> photos per minute;
- memory: peak of the summed RSS of the watcher and all its descendants (workers, forkserver), sampled
  every 0.25 s from /proc; and the watcher process alone before and after the burst;
- --day N: afterwards N small (640x480) photos, to see whether the watcher's memory stays flat.

    uv run python benchmarks/bench_watch.py --flood 500,2000,10000

Only the watcher's intake, in this process, with real inotify events: N empty files are written into
the inbox and the watcher's own event loop (``_drain_events``) runs until every file is waiting; then
one periodic rescan of the whole inbox. Before issue 11 every folder event rescanned the whole inbox,
so intake grew with the square of N.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from facekit import face_patch, jpeg_bytes, scene  # noqa: E402
from proctree import PeakPerWorker, tree_cpu, tree_rss  # noqa: E402

ROSTER = "id,name,face_matching,facebook,instagram,twitter,expires\nada,Ada,yes,yes,yes,yes,\ngrace,Grace,yes,yes,no,no,\n"
class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True
        self.last = (0, 0, 0)
        self.per_worker = PeakPerWorker()

    def run(self) -> None:
        while self.running:
            self.last = tree_rss(self.pid)
            self.peak = max(self.peak, self.last[0])
            self.per_worker.sample(self.pid)
            time.sleep(0.25)


def write_references(enrol: Path) -> None:
    for child, face in (("ada", "astronaut"), ("grace", "hopper")):
        folder = enrol / child
        folder.mkdir(parents=True, exist_ok=True)
        for i, (width, context, gain) in enumerate([(150, 0.8, 1.0), (190, 0.6, 1.1), (170, 1.0, 0.9)]):
            rgb = face_patch(face, width, context).rgb.astype(np.float32) * gain
            Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(folder / f"ref{i}.jpg", quality=92)


def make_photos(folder: Path, count: int, prefix: str, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(0).normal(0, 4, (3000, 4000, 1)).astype(np.int16)
    paths = []
    for i in range(start, start + count):
        faces = [("astronaut" if j % 2 else "hopper", 300 + j * 700, 900 + (j * 337 + i * 91) % 1200, w)
                 for j, w in enumerate((420, 260, 160, 96, 48))]
        rgb, _ = scene(4000, 3000, faces, seed=i)
        rgb = np.clip(rgb + np.roll(noise, i * 7, axis=1), 0, 255).astype(np.uint8)
        path = folder / f"{prefix}{i:04d}.jpg"
        path.write_bytes(jpeg_bytes(rgb, quality=90))
        paths.append(path)
    return paths


def done_count(database: Path) -> int:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM photos WHERE state = 'done'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def pipeline_seconds(database: Path, names: list[str]) -> list[float]:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        marks = ",".join("?" * len(names))
        return [r[0] for r in conn.execute(f"SELECT seconds FROM photos WHERE source IN ({marks})", names)]
    finally:
        conn.close()


def wait_for(check, timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            raise SystemExit(f"the watcher exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def mb(n: int) -> float:
    return round(n / 2**20, 1)


def flood(count: int) -> dict:
    from photoguard.flow.watch import Watcher, WatchOptions
    from photoguard.store.home import open_home

    work = Path(tempfile.mkdtemp(prefix="pg-bench-flood-"))
    home = open_home(work / "home")
    watcher = Watcher(home, WatchOptions(workers=1))
    observer = watcher._observe()
    try:
        t0, c0 = time.monotonic(), time.process_time()
        for i in range(count):
            (home.inbox / f"IMG_{i:05d}.jpg").write_bytes(b"")
        written = time.monotonic() - t0
        while len(watcher.pending) < count and time.monotonic() - t0 < 1800:
            watcher._drain_events()
            time.sleep(0.05)
        intake, cpu = time.monotonic() - t0, time.process_time() - c0
        scans = getattr(watcher, "scans", None)   # folder scans during intake (None: older code, not counted)
        t1 = time.monotonic()
        watcher._scan_inbox()
        rescan = time.monotonic() - t1
    finally:
        observer.stop()
        observer.join(10)
    return {"files": count, "seen": len(watcher.pending), "write_s": round(written, 2),
            "intake_s": round(intake, 2), "intake_cpu_s": round(cpu, 2), "rescan_s": round(rescan, 3),
            "folder_scans_during_intake": scans}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--latency-photos", type=int, default=3)
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=None, help="default: number of cores")
    parser.add_argument("--day", type=int, default=0, help="then N small photos, for memory flatness")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--flood", default=None, help="only the intake of N new files (comma-separated Ns)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --before: measure both this many times, in turn, each round in the other order")
    parser.add_argument("--before", type=Path, default=None,
                        help="first measure an older 'photoguard' package kept in this folder, e.g. "
                             "mkdir /tmp/pg-before && git archive main photoguard | tar -x -C /tmp/pg-before")
    args = parser.parse_args()
    if args.flood:
        for n in (int(x) for x in args.flood.split(",")):
            r = flood(n)
            print(json.dumps(r) if args.json else
                  f"{r['files']} new files: all {r['seen']} waiting after {r['intake_s']}s "
                  f"({r['intake_cpu_s']}s CPU; writing them took {r['write_s']}s); "
                  f"a rescan of the whole inbox {r['rescan_s']}s; folder scans during intake {r['folder_scans_during_intake']}", flush=True)
        return

    if args.before is None:
        measure(args, None)
        return
    if not (args.before / "photoguard" / "__init__.py").exists():
        raise SystemExit(f"--before {args.before}: no photoguard package in that folder")
    trees = [("before: " + str(args.before), args.before.resolve()), ("this tree", None)]
    for round_ in range(args.rounds):
        # Every other round the other one first: a machine whose load changes favours neither.
        for label, code in (trees if round_ % 2 == 0 else trees[::-1]):
            print(f"--- round {round_ + 1}, {label}", flush=True)
            measure(args, code)


def measure(args, code: Path | None) -> None:
    """One watcher run; ``code``: a folder whose photoguard package is run instead of this tree's."""
    work = Path(tempfile.mkdtemp(prefix="pg-bench-watch-"))
    home = work / "home"
    staged = home / "incoming"   # same file system as the inbox, so a drop is one rename
    from photoguard.store.starter import init_home

    init_home(home)   # the watcher refuses a folder that is not a home
    for sub in ("inbox", "enrol"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    write_references(home / "enrol")
    (home / "enrol" / "children.csv").write_text(ROSTER, encoding="utf-8")
    t = time.monotonic()
    latency_files = make_photos(staged, args.latency_photos, "single")
    burst_files = make_photos(staged, args.burst, "burst", start=100)
    print(f"made {len(latency_files) + len(burst_files)} 12 MP photos in {time.monotonic() - t:.0f}s "
          f"({mb(sum(p.stat().st_size for p in burst_files)) / max(1, len(burst_files)):.1f} MB each)", file=sys.stderr)

    cmd = [sys.executable, "-m", "photoguard", "watch", "--home", str(home), "--settle", str(args.settle)]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    err = open(work / "watch.err", "wb")
    started = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(code)} if code is not None else None
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=work)
    sampler = Sampler(proc.pid)
    sampler.start()
    log = work / "watch.err"
    wait_for(lambda: b"watching " in log.read_bytes(), 300, "the watcher to start", proc)
    # Workers load their models at start: wait until the tree's memory stops growing.
    previous, stable_since = 0, time.monotonic()
    while time.monotonic() - stable_since < 3:
        time.sleep(0.5)
        now = sampler.last[0]
        if abs(now - previous) > 0.02 * max(previous, 1):
            stable_since = time.monotonic()
        previous = now
    startup = time.monotonic() - started
    idle_tree, idle_watcher, nproc = sampler.last

    database = home / ".photoguard" / "photoguard.db"
    outbox = home / "outbox" / "facebook"
    latencies = []
    for path in latency_files:
        target = home / "inbox" / path.name
        t0 = time.monotonic()
        os.rename(path, target)
        wait_for((outbox / path.name).exists, 300, path.name, proc)
        latencies.append(time.monotonic() - t0)
        time.sleep(0.5)
    single_pipeline = pipeline_seconds(database, [p.name for p in latency_files])

    before = done_count(database)
    cpu0 = tree_cpu(proc.pid)
    t0 = time.monotonic()
    for path in burst_files:
        os.rename(path, home / "inbox" / path.name)
    wait_for(lambda: done_count(database) >= before + len(burst_files), 3600, "the burst", proc)
    burst_seconds = time.monotonic() - t0
    burst_cpu = tree_cpu(proc.pid) - cpu0
    burst_pipeline = pipeline_seconds(database, [p.name for p in burst_files])
    after_tree, after_watcher, _ = tree_rss(proc.pid)

    day = {}
    if args.day:
        small = staged / "day"
        small.mkdir()
        rng = np.random.default_rng(5)
        files = []
        for i in range(args.day):
            rgb, _ = scene(640, 480, [("astronaut", 100, 100, 90)] if i % 3 == 0 else [], seed=10_000 + i)
            rgb = np.clip(rgb.astype(np.int16) + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8)
            files.append(small / f"day{i:05d}.jpg")
            files[-1].write_bytes(jpeg_bytes(rgb))
        before_day = done_count(database)
        watcher_before = tree_rss(proc.pid)[1]
        t0 = time.monotonic()
        for path in files:
            os.rename(path, home / "inbox" / path.name)
        wait_for(lambda: done_count(database) >= before_day + len(files), 7200, "the day", proc)
        day = {"photos": args.day, "seconds": round(time.monotonic() - t0, 1),
               "watcher_rss_mb_before": mb(watcher_before), "watcher_rss_mb_after": mb(tree_rss(proc.pid)[1]),
               "tree_rss_mb_after": mb(tree_rss(proc.pid)[0])}

    proc.send_signal(signal.SIGTERM)
    code = proc.wait(120)
    sampler.running = False
    err.close()

    cpu = os.cpu_count()
    result = {
        "cores": cpu, "workers": args.workers or cpu, "settle_s": args.settle,
        "startup_s": round(startup, 1),
        "latency_s": {"median": round(statistics.median(latencies), 2), "all": [round(x, 2) for x in latencies],
                      "pipeline_median": round(statistics.median(single_pipeline), 2)},
        "burst": {"photos": len(burst_files), "seconds": round(burst_seconds, 1),
                  "photos_per_minute": round(60 * len(burst_files) / burst_seconds, 1),
                  "pipeline_median_s": round(statistics.median(burst_pipeline), 2),
                  "cpu_s_per_photo": round(burst_cpu / len(burst_files), 2)},
        "memory_mb": {"peak_tree": mb(sampler.peak), "peak_per_worker": mb(sampler.per_worker.worker_peak()),
                      "idle_tree": mb(idle_tree), "processes": nproc,
                      "watcher_idle": mb(idle_watcher), "watcher_after_burst": mb(after_watcher),
                      "tree_after_burst": mb(after_tree)},
        "day": day, "exit_code": code,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"cores {cpu}, workers {result['workers']}, settle {args.settle:g}s, startup {startup:.1f}s")
        print(f"latency drop -> outbox (one 12 MP photo, idle watcher): median {result['latency_s']['median']}s "
              f"{result['latency_s']['all']} (pipeline itself {result['latency_s']['pipeline_median']}s)")
        b = result["burst"]
        print(f"burst of {b['photos']} x 12 MP: {b['seconds']}s = {b['photos_per_minute']} photos/min "
              f"(pipeline median {b['pipeline_median_s']}s per photo per worker; {b['cpu_s_per_photo']} CPU s per photo, "
              "the whole tree)")
        m = result["memory_mb"]
        print(f"memory: peak {m['peak_tree']} MB for the whole tree ({m['processes']} processes; idle {m['idle_tree']} MB), "
              f"{m['peak_per_worker']} MB the largest worker; "
              f"watcher alone {m['watcher_idle']} MB idle, {m['watcher_after_burst']} MB after the burst")
        if day:
            print(f"day of {day['photos']} small photos in {day['seconds']}s: watcher {day['watcher_rss_mb_before']} -> "
                  f"{day['watcher_rss_mb_after']} MB, tree {day['tree_rss_mb_after']} MB after")
        print(f"watcher exit code after SIGTERM: {code}; home kept in {work}")


if __name__ == "__main__":
    main()
