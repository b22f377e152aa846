"""A photo whose name starts with a dot is still a photo, and no file waits in the inbox unseen."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from facekit import jpeg_bytes

from photoguard.cli import main
from photoguard.store.home import open_home


def test_dot_named_photos_are_processed_and_files_left_alone_are_named(tmp_path):
    home = open_home(tmp_path / "home")
    rng = np.random.default_rng(7)
    photo = lambda: jpeg_bytes(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))  # noqa: E731
    (home.inbox / ".hidden.jpg").write_bytes(photo())
    (home.inbox / "..jpg").write_bytes(photo())
    (home.inbox / "._IMG_0001.jpg").write_bytes(b"\0\5\26\7 Mac OS X companion")   # a Mac's companion file
    (home.inbox / "copying.jpg.part").write_bytes(photo()[:500])                     # still being copied
    (home.inbox / "Thumbs.db").write_bytes(b"x")                                     # the computer's own
    runner = CliRunner()

    before = runner.invoke(main, ["status", "--home", str(home.root)])
    assert "inbox: 2 file(s) waiting" in before.output, before.output

    done = runner.invoke(main, ["process", "--workers", "1", "--home", str(home.root)])
    assert done.exit_code == 0, done.output

    for channel in home.settings.channels:
        names = sorted(p.name for p in home.outbox_for(channel).iterdir())
        assert names == ["hidden.jpg", "photo.jpg"], names   # never hidden in the outbox either
    left = sorted(p.name for p in home.inbox.iterdir())
    assert left == ["._IMG_0001.jpg", "Thumbs.db", "copying.jpg.part"]   # never touched
    after = runner.invoke(main, ["status", "--home", str(home.root)])
    assert "inbox: 0 file(s) waiting" in after.output
    assert "inbox: 2 file(s) PhotoGuard does not take (._IMG_0001.jpg, copying.jpg.part)" in after.output
    assert "Thumbs.db" not in after.output
