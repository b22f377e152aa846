"""Memory of a process and all its descendants, from /proc (for the benchmarks)."""

from __future__ import annotations

import os

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_table() -> tuple[dict[int, list[int]], dict[int, int]]:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * PAGE
    return children, rss


def tree_rss(root: int) -> tuple[int, int, int]:
    """(whole tree, the root alone, number of processes) in bytes."""
    children, rss = _rss_table()
    total, n, todo = 0, 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        n += 1
        todo.extend(children.get(pid, []))
    return total, rss.get(root, 0), n
