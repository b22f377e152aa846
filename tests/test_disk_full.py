"""A full disk in the middle of a batch: nothing lost, nothing half-written, finished once there is room."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from facekit import jpeg_bytes, scene

from photoguard.cli import main
from photoguard.store.home import open_home

PHOTOS = 6


@pytest.fixture
def small_disk(tmp_path):
    """A file system of our own with room for the photos and about two photos' outputs (a file per
    channel each; needs root to mount a tmpfs; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    room_kb = sum(len(noisy_photo(i)) for i in range(PHOTOS)) // 1024 + 1200 * 3
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={room_kb}k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def noisy_photo(seed: int) -> bytes:
    rgb, _ = scene(1200, 900, [("astronaut", 200 + 40 * seed, 200, 120)], seed=seed)
    noise = np.random.default_rng(seed).integers(0, 40, rgb.shape, dtype=np.uint8)
    return jpeg_bytes(np.clip(rgb.astype(np.int16) + noise - 20, 0, 255).astype(np.uint8), quality=92)


def test_full_disk_stops_cleanly_and_resumes(small_disk):
    home = open_home(small_disk / "home")
    names = []
    for i in range(PHOTOS):
        data = noisy_photo(i)
        (home.inbox / f"p{i}.jpg").write_bytes(data)
        names.append(f"p{i}.jpg")
    runner = CliRunner()
    first = runner.invoke(main, ["process", "--workers", "1", "--home", str(home.root)])
    assert first.exit_code == 1, first.output
    assert "no space left" in first.output and "Traceback" not in first.output

    def check_one_place(all_done: bool) -> None:
        waiting = {p.name for p in home.inbox.iterdir()}
        archived = {p.name.split("_", 1)[1] for p in home.archive.rglob("*.jpg")}
        held = {p.with_suffix(".jpg").name for p in home.review.glob("*.json")}
        assert not list(home.failed.iterdir()), "a full disk is not a bad photo"
        for channel in home.settings.channels:
            outs = {p.name for p in home.outbox_for(channel).iterdir()}
            assert not [n for n in outs if n.startswith(".")], outs
            assert outs == archived - held, (channel, outs, archived, held)
            for p in home.outbox_for(channel).iterdir():
                assert p.read_bytes().rstrip(b"\0").endswith(b"\xff\xd9")
        assert waiting | archived == set(names) and not waiting & archived
        if all_done:
            assert not waiting

    check_one_place(all_done=False)
    assert 0 < len(list(home.inbox.iterdir())) < PHOTOS  # some done, then it really ran out of room
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    second = runner.invoke(main, ["process", "--workers", "1", "--home", str(home.root)])
    assert second.exit_code == 0, second.output
    check_one_place(all_done=True)
