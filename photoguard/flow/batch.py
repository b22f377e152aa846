"""Running the processor over many photos: opening it (roster synced, outbox re-checked), finishing what a killed
run left, and worker processes.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from pathlib import Path

from PIL import Image

from photoguard.flow.pipeline import Processor
from photoguard.flow.recheck import recheck_outbox
from photoguard.flow.results import _DISK_FULL, DiskFull, PhotoResult
from photoguard.photos.durable import display_name
from photoguard.photos.images import MAX_FILE_BYTES, LoadedImage, load_image_bytes, register_heif
from photoguard.photos.intake import NotAPhotoFile, hash_regular, open_regular
from photoguard.store.home import Home


def open_processor(home: Home, echo: Callable[[str], None] = print) -> Processor:
    """Load the engine, bring the roster up to date from children.csv and re-check the outbox
    against today's consents (a consent may have expired overnight)."""
    from photoguard.store.roster import sync_roster

    processor = Processor(home)
    if home.roster_csv.exists() or processor.consents:
        # A roster that cannot be read (or was deleted while children are on file) raises RosterError:
        # nothing is processed until it is fixed, since the consents on file might include ones the
        # manager has just withdrawn. A new home with no roster at all obscures every face.
        try:
            sync_roster(home, processor.conn, detector=lambda: processor.detector)
        except BaseException:
            # Consents are committed first: the outbox follows them even when the rest of the sync failed.
            processor.reload_roster()
            recheck_outbox(processor)
            raise
        processor.reload_roster()
    for change in recheck_outbox(processor):
        echo(change.describe())
    return processor


def resume_interrupted(processor: Processor) -> list[PhotoResult]:
    """Finish photos a killed run left half done; re-queue ones that had not reached publishing.

    Each entry on its own: one that cannot be finished goes to failed/ with the reason and never stops
    the others (or every later start)."""
    results = []
    rows = processor.conn.execute("SELECT sha256, source_path, state FROM photos WHERE state != 'done'").fetchall()
    for row in rows:
        sha = row["sha256"]
        try:
            if row["state"] == "publishing":
                path = Path(row["source_path"]) if row["source_path"] else Path("/nonexistent")
                results.append(processor._finish_publishing(path, sha, time.monotonic()))
            else:
                # Nothing was published; the photo is still where it was dropped and will be taken again.
                processor._clear_staging(sha)
                processor.conn.execute("DELETE FROM photos WHERE sha256 = ? AND state != 'done'", (sha,))
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise DiskFull(errno.ENOSPC, f"no space left on the disk of {processor.home.root} while "
                               "finishing interrupted photos; free some space and run again") from exc
            results.append(processor.abandon(sha, f"{type(exc).__name__}: {display_name(str(exc))}", exc.strerror))
        except Exception as exc:  # noqa: BLE001 — one bad entry must not stop the rest
            results.append(processor.abandon(sha, f"{type(exc).__name__}: {display_name(str(exc))}"))
    # A run killed between marking a photo done and removing its staging folder leaves the folder behind
    # (and one killed while copying a file in, a snapshot).
    for entry in processor.staging.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(".intake-"):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
    if results:
        # Those photos were decided before the interruption; a consent may have changed since.
        recheck_outbox(processor)
    return results


_worker: Processor | None = None  # one per worker process, so each loads the models once


def _init_worker(root: str) -> None:
    global _worker
    from photoguard.store.home import open_home

    _worker = Processor(open_home(root), threads=1)


def warm_up_worker(threads: Sequence[int] = (1,)) -> None:
    """Load a pool worker's models now and run each once, so its first photo waits for none of it.

    The detector warms up once with each thread count in ``threads`` (a photo alone in an idle watcher is
    given every core): its float and int8 models on a blank picture the size of its main pass
    (``FaceDetector.warm_up``). ONNX Runtime's sessions for that count, and their
    working memory for a photo, are made here rather than while the first photo waits (measured on the
    2-core machine: 30 ms for a session, 140 ms more for the first pass of each).
    SFace runs once on a blank chip (OpenCV sets its network up at the first call)."""
    if _worker is None:
        return
    import cv2
    import numpy as np

    detector = _worker.detector
    before = cv2.getNumThreads()
    try:
        for count in dict.fromkeys(threads):
            cv2.setNumThreads(count)
            detector.warm_up()
    finally:
        cv2.setNumThreads(before)
    if _worker.templates:
        _worker.encoder.sface.embed(np.zeros((1, 112, 112, 3), np.uint8))


class ReadAhead:
    """Decoding the next photo in a thread of its own while this one is processed.

    At most one photo is held ahead (its pixels, ~36 MB for 12 MP). What is decoded ahead is only used
    if its bytes hash to the snapshot the pipeline takes (``Processor.process(loaded=)``); a photo that
    cannot be read or decoded ahead is simply read again in its turn, which says why."""

    def __init__(self) -> None:
        self._path: str | None = None
        self._future: Future | None = None
        self._thread: ThreadPoolExecutor | None = None

    def start(self, path: str | None) -> None:
        if path is None or path == self._path:
            return
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
        self._path, self._future = path, self._thread.submit(_read, path)

    def take(self, path: str) -> LoadedImage | None:
        """The photo at ``path`` if it was decoded ahead (waiting for the decoding to finish), else None;
        whatever else was held ahead is let go."""
        held, future = self._path, self._future
        self._path = self._future = None
        if future is None or held != path:
            return None
        return future.result()

    def close(self) -> None:
        self._path = self._future = None
        if self._thread is not None:
            self._thread.shutdown(wait=True, cancel_futures=True)
            self._thread = None


# A larger photo is not decoded ahead: two of them at once in one worker would cost more memory than the
# time it saves (a 100 MP photo is 300 MB of pixels).
READ_AHEAD_MAX_PIXELS = 24_000_000


def _read(path: str) -> LoadedImage | None:
    try:
        register_heif()
        fd, _ = open_regular(path, MAX_FILE_BYTES)
        with open(fd, "rb") as fh:
            with Image.open(fh) as header:
                if header.width * header.height > READ_AHEAD_MAX_PIXELS:
                    return None
            fh.seek(0)
            data = fh.read(MAX_FILE_BYTES + 1)
        return load_image_bytes(data)
    except Exception:  # noqa: BLE001 — gone, not a photo, damaged, too large: its own turn says so
        return None


_ahead = ReadAhead()   # a pool worker's


def _work(item: tuple) -> PhotoResult:
    """Process one photo in a pool worker. A fourth item is how many threads the models may use for it
    (more than one only when this photo is the only one in hand, so that it is done sooner); a fifth, the
    photo this worker will most likely be given next, decoded meanwhile in a thread."""
    path, sha, today, *more = item
    assert _worker is not None
    threads = more[0] if more else None
    upcoming = more[1] if len(more) > 1 else None
    if threads:
        import cv2

        _worker.detector   # loaded first: loading sets the worker's one thread
        cv2.setNumThreads(threads)
    loaded = _ahead.take(path)
    _ahead.start(upcoming)
    return _worker.process(Path(path), date.fromisoformat(today), sha=sha, loaded=loaded)


def run_batch(processor: Processor, paths: Sequence[Path], *, workers: int = 1, today: date | None = None,
              on_result: Callable[[PhotoResult], None] | None = None) -> list[PhotoResult]:
    """Process files (the caller holds the home's lock). Each distinct content is processed once;
    later copies of the same bytes are archived as duplicates after the first is done."""
    today = today or date.today()
    results: list[PhotoResult] = []

    def done(result: PhotoResult) -> None:
        results.append(result)
        if on_result:
            on_result(result)

    for result in resume_interrupted(processor):
        done(result)
    first: dict[str, Path] = {}
    later: list[tuple[Path, str]] = []
    for path in paths:
        try:
            sha = hash_regular(path, MAX_FILE_BYTES)
        except FileNotFoundError:
            continue  # taken away while we were listing
        except (NotAPhotoFile, OSError):
            sha = f"unread:{path}"   # not read: processing refuses it with the reason
        if sha in first:
            later.append((path, sha))
        else:
            first[sha] = path
    if workers <= 1 or len(first) <= 1:
        ahead = ReadAhead()
        queue = list(first.items())
        try:
            for i, (sha, path) in enumerate(queue):
                loaded = ahead.take(str(path))
                ahead.start(str(queue[i + 1][1]) if i + 1 < len(queue) and not queue[i + 1][0].startswith("unread:")
                            else None)
                done(processor.process(path, today, sha=sha, loaded=loaded))
        finally:
            ahead.close()
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # forkserver/spawn: never fork a process that holds an open SQLite connection and model state.
        ctx = multiprocessing.get_context("forkserver")
        items = [(str(p), sha, today.isoformat()) for sha, p in first.items()]
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(str(processor.home.root),)) as pool:
            for result in pool.map(_work, items):
                done(result)
    for path, sha in later:
        done(processor.process(path, today, sha=sha))
    return results
