"""Outbox bookkeeping benchmark: how long the outbox page, one photo by id and the take-down list take
with a full outbox.

    uv run python benchmarks/bench_outbox.py [--photos 2000]

Builds a home with ``--photos`` photos in every channel's outbox (small files: the cost is in finding
them, not in their size), recorded as the pipeline records them, then times ``list_outbox`` (every
channel, and one), ``outbox_photo`` (what the web app does per thumbnail), ``takedown_list`` and a
sweep that notices 10 collected files. Goal: one photo by id < 20 ms; the whole outbox < 1 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from photoguard.flow.outbox import list_outbox, outbox_photo, record_outbox_file, sweep, takedown_list
from photoguard.store.db import connect, transaction
from photoguard.store.home import open_home
from photoguard.store.localtime import now_iso


def timed(label: str, fn, repeat: int = 3) -> None:
    best = min(_once(fn) for _ in range(repeat))
    print(f"{label:<44} {best * 1000:9.2f} ms")


def _once(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = open_home(tmp)
        conn = connect(home.database)
        channels = home.settings.channels
        with transaction(conn):
            for i in range(args.photos):
                sha = f"{i:064x}"
                conn.execute("INSERT INTO photos (sha256, source, state, outcome, received_at, finished_at) "
                             "VALUES (?, ?, 'done', 'cleared', ?, ?)", (sha, f"photo{i}.jpg", now_iso(), now_iso()))
                for channel in channels:
                    path = home.outbox_for(channel) / f"photo{i}.jpg"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(os.urandom(2048))
                    conn.execute("INSERT INTO outputs (photo_sha256, channel, path, file_sha256, created_at) "
                                 "VALUES (?,?,?,?,?)", (sha, channel, str(path.relative_to(home.root)), sha, now_iso()))
                    record_outbox_file(home, conn, sha, channel, path, shown=[], file_sha256=sha)
        print(f"{args.photos} photos x {len(channels)} channels = {args.photos * len(channels)} outbox files")
        timed(f"list_outbox, channel {channels[0]}", lambda: list_outbox(home, conn, channels[0]))
        timed("list_outbox, every channel", lambda: list_outbox(home, conn))
        timed("outbox_photo (one photo by id)", lambda: outbox_photo(home, conn, args.photos))
        timed("takedown_list (with a sweep)", lambda: takedown_list(conn, home=home))
        for i in range(10):
            (home.outbox_for(channels[0]) / f"photo{i}.jpg").unlink()
        timed("sweep noticing 10 collected files", lambda: sweep(home, conn), repeat=1)


if __name__ == "__main__":
    main()
