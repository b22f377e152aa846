"""What the watcher is doing, for status and the Today page: read from the status file it keeps and the database,
never from the watcher itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from photoguard.store.home import Home

STATUS_FILE = "watch.json"


@dataclass
class Recent:
    at: str
    status: str
    name: str
    detail: str


@dataclass
class WatchStatus:
    watcher_pid: int | None
    watcher: dict | None                 # the running watcher's own view (state, waiting, in flight)
    inbox_waiting: int                   # files in inbox/ not yet processed
    unfinished: list[tuple[str, str]]    # (source, state) of journal rows not done
    today: dict[str, int]                # cleared / review / failed / duplicate
    recent: list[Recent]
    inbox_not_taken: list[str] = field(default_factory=list)   # files in inbox/ PhotoGuard leaves alone
    disk_full: bool = False              # the home's disk is full (then the rest is as last written whole)


def watch_status(home: Home, recent: int = 10, today: date | None = None) -> WatchStatus:
    """What ``photoguard status`` shows; safe while the watcher runs (SQLite WAL, read only)."""
    from photoguard.photos.inbox import collect, not_taken
    from photoguard.store import db
    from photoguard.store.lock import lock_holder

    pid = lock_holder(home)
    watcher = None
    status_path = home.state / STATUS_FILE
    if pid is not None and status_path.exists():
        try:
            watcher = json.loads(status_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            watcher = None
        if watcher is not None and watcher.get("pid") != pid:
            watcher = None  # left by an earlier run; the lock is held by `process`
    conn = db.connect(home.database, snapshot_when_full=True)
    try:
        unfinished = [(r["source"], r["state"]) for r in conn.execute(
            "SELECT source, state FROM photos WHERE state != 'done' ORDER BY received_at")]
        day = (today or date.today()).isoformat()
        counts = {"cleared": 0, "review": 0, "failed": 0, "duplicate": 0}
        rows = conn.execute("SELECT id, kind, detail, photo_sha256 FROM events "
                            "WHERE kind IN ('processed', 'duplicate') AND at >= ? ORDER BY id", (day,)).fetchall()
        # A photo done again (`reprocess`) is one photo: it counts once, as it came out last.
        last = {("p", r["photo_sha256"]) if r["kind"] == "processed" and r["photo_sha256"] else ("e", r["id"]): r
                for r in rows}
        for r in last.values():
            status = "duplicate" if r["kind"] == "duplicate" else (r["detail"] or "").split(":", 1)[0]
            counts[status] = counts.get(status, 0) + 1
        items = []
        listed: set[str] = set()
        for r in conn.execute(
                "SELECT e.at, e.kind, e.detail, e.photo_sha256, p.source FROM events e "
                "LEFT JOIN photos p ON p.sha256 = e.photo_sha256 "
                "WHERE e.kind IN ('processed', 'duplicate') ORDER BY e.id DESC LIMIT ?", (recent * 4,)):
            if r["kind"] == "processed" and r["photo_sha256"]:
                if r["photo_sha256"] in listed:
                    continue
                listed.add(r["photo_sha256"])
            items.append(_recent(r))
            if len(items) == recent:
                break
    finally:
        conn.close()
    return WatchStatus(pid, watcher, len(collect([home.inbox])), unfinished, counts, items, not_taken(home.inbox),
                       db.disk_is_full(home.root))


def not_taken_words(names: Sequence[str], show: int = 3) -> str:
    """The inbox files PhotoGuard leaves alone, in words a manager can act on."""
    listed = ", ".join(names[:show]) + (f" and {len(names) - show} more" if len(names) > show else "")
    return (f"{len(names)} file(s) PhotoGuard does not take ({listed}): copies still being written, or a "
            "computer's own files; delete them if nobody is copying photos in just now")


def _recent(row) -> Recent:
    detail = row["detail"] or ""
    if row["kind"] == "duplicate":
        name, _, first = detail.partition(" = ")
        return Recent(row["at"], "duplicate", name, f"same photo as {first}")
    status, _, rest = detail.partition(": ")
    if status == "failed":
        name, _, reason = rest.partition(": ")
        return Recent(row["at"], status, name, reason)
    return Recent(row["at"], status, row["source"] or "?", "" if rest == "ok" else rest)
