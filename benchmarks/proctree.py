"""Memory of a process and all its descendants, from /proc (for the benchmarks)."""

from __future__ import annotations

import os

PAGE = os.sysconf("SC_PAGE_SIZE")


def _stats() -> dict[int, list[str]]:
    """Every process's /proc/<pid>/stat fields after the command name (field 0 is its state)."""
    out: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                out[int(entry)] = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
    return out


def _children(stats: dict[int, list[str]]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    return children


def _rss_table() -> tuple[dict[int, list[int]], dict[int, int]]:
    stats = _stats()
    return _children(stats), {pid: int(fields[21]) * PAGE for pid, fields in stats.items()}


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


def tree_processes(root: int) -> list[tuple[int, int, int]]:
    """(pid, depth below ``root``, RSS in bytes) of ``root`` and every descendant. A pool's workers are at
    depth 2 (root -> forkserver -> worker)."""
    children, rss = _rss_table()
    out, todo = [], [(root, 0)]
    while todo:
        pid, depth = todo.pop()
        out.append((pid, depth, rss.get(pid, 0)))
        todo.extend((child, depth + 1) for child in children.get(pid, []))
    return out


class PeakPerWorker:
    """The highest RSS each process of a tree reached, sampled; ``worker_peak`` is the largest of the pool
    workers' (depth 2), or of the root itself when the work was done in it (no pool)."""

    def __init__(self) -> None:
        self.peaks: dict[int, tuple[int, int]] = {}   # pid -> (depth, peak)

    def sample(self, root: int) -> None:
        for pid, depth, rss in tree_processes(root):
            old = self.peaks.get(pid, (depth, 0))[1]
            self.peaks[pid] = (depth, max(old, rss))

    def worker_peak(self) -> int:
        workers = [peak for depth, peak in self.peaks.values() if depth == 2]
        return max(workers) if workers else max((p for d, p in self.peaks.values() if d == 0), default=0)


TICK = os.sysconf("SC_CLK_TCK")


def own_cpu(root: int) -> dict[int, float]:
    """Each process of the tree: the CPU seconds (user + system) it has used itself so far."""
    stats = _stats()
    children = _children(stats)
    cpu = {pid: (int(fields[11]) + int(fields[12])) / TICK for pid, fields in stats.items()}
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        out[pid] = cpu.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) used so far by ``root`` and its living descendants, and by the children
    they have waited for."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        cpu[int(entry)] = sum(int(x) for x in fields[11:15]) / TICK
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total
