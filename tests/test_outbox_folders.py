"""The outbox keeps the folders staff dropped photos in (issue 13, item 7): inbox/Room 2/Sports day/x.jpg
-> outbox/<channel>/Room 2/Sports day/x.jpg, with safe names, collisions, tracking, re-check and take-down,
on real files with a real processor."""

from __future__ import annotations

import io
import os
import shutil
import stat
import zipfile
from pathlib import Path

from click.testing import CliRunner
from facekit import jpeg_bytes
from test_pipeline import (  # noqa: F401
    CSV_HEADER,
    FirstLookMisses,
    detector,
    enrolled_home,
    home,
    photo_of_both,
    processor,  # noqa: F401
)

from photoguard.cli import main
from photoguard.flow.outbox import list_outbox, takedown_list
from photoguard.flow.recheck import recheck_outbox
from photoguard.flow.pipeline import Processor
from photoguard.flow.batch import run_batch
from photoguard.photos.inbox import collect
from photoguard.photos.durable import drop_folder, make_folders
from photoguard.store.roster import sync_roster

CHANNELS = ("facebook", "instagram", "twitter")
NO_ADA = CSV_HEADER + "ada,Ada,yes,no,no,no,\ngrace,Grace,yes,yes,no,no,\n"


def drop_in(home, rel: str, seed: int) -> Path:
    path = home.inbox / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb, _ = photo_of_both(seed=seed)
    path.write_bytes(jpeg_bytes(rgb))
    return path


def in_outbox(home, channel: str) -> list[str]:
    base = home.outbox_for(channel)
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())


def test_drop_folder_is_safe(tmp_path):
    inbox = tmp_path / "inbox"
    assert drop_folder(inbox / "Room 2" / "Sports day" / "x.jpg", inbox) == Path("Room 2/Sports day")
    assert drop_folder(inbox / "x.jpg", inbox) == Path()
    assert drop_folder(tmp_path / "elsewhere" / "x.jpg", inbox) == Path()     # not dropped in the inbox
    assert drop_folder(inbox / ".." / "x.jpg", inbox) == Path()
    assert drop_folder(inbox / "a" / ".." / ".." / "etc" / "x.jpg", inbox) == Path()
    assert drop_folder(inbox / ".hidden" / "..." / "x.jpg", inbox) == Path("_hidden/_")
    odd = drop_folder(os.fsencode(inbox) + b"/caf\xe9 " + b"y" * 300 + b"/x.jpg", inbox)
    assert len(odd.parts) == 1 and len(odd.parts[0].encode()) <= 100 and "\udce9" not in odd.parts[0]
    # A file squatting on a folder's name is never written through.
    base = tmp_path / "outbox"
    base.mkdir()
    (base / "Room 2").write_text("not a folder")
    assert make_folders(base, Path("Room 2/Sports day")) == base / "Room 2-1" / "Sports day"


def test_outbox_keeps_the_drop_folders(home, processor):
    os.chmod(home.outbox_for("facebook"), 0o2750)
    drop_in(home, "Room 2/Sports day/x.jpg", seed=31)
    drop_in(home, "Room 3/x.jpg", seed=32)
    drop_in(home, "x.jpg", seed=33)
    results = run_batch(processor, collect([home.inbox]))
    assert sorted(r.status for r in results) == ["cleared"] * 3
    for channel in CHANNELS:
        assert in_outbox(home, channel) == ["Room 2/Sports day/x.jpg", "Room 3/x.jpg", "x.jpg"]
    # New folders take the outbox's own mode (shared with the manager's group), whatever the umask.
    assert stat.S_IMODE(os.stat(home.outbox_for("facebook") / "Room 2" / "Sports day").st_mode) == 0o2750 & 0o7777
    # Nothing of the drop is left in the inbox but its folders (removing those is housekeeping's job).
    assert not [p for p in home.inbox.rglob("*") if p.is_file()]

    # The same name dropped again into the same folder: a name of its own, never overwritten.
    drop_in(home, "Room 2/Sports day/x.jpg", seed=34)
    run_batch(processor, collect([home.inbox]))
    assert in_outbox(home, "twitter") == ["Room 2/Sports day/x-1.jpg", "Room 2/Sports day/x.jpg", "Room 3/x.jpg",
                                          "x.jpg"]

    # The outbox, as the manager reads it, names the folder.
    photos = list_outbox(home, processor.conn, "facebook")
    assert sorted(p.shown_name for p in photos) == ["Room 2/Sports day/x-1.jpg", "Room 2/Sports day/x.jpg",
                                                    "Room 3/x.jpg", "x.jpg"]
    listing = CliRunner().invoke(main, ["posted", "--list", "--channel", "facebook", "--home", str(home.root)])
    assert "facebook  Room 3/x.jpg" in listing.output
    # Posting by the name with its folder picks that one file, not the other x.jpg.
    res = CliRunner().invoke(main, ["posted", "Room 3/x.jpg", "--channel", "facebook", "--by", "Mrs Jones",
                                    "--home", str(home.root)])
    assert res.exit_code == 0, res.output
    assert "Room 3/x.jpg marked posted" in res.output


def test_recheck_and_takedown_of_a_file_in_a_subfolder(home, processor):
    drop_in(home, "Room 2/Sports day/race.jpg", seed=35)
    run_batch(processor, collect([home.inbox]))
    facebook = home.outbox_for("facebook") / "Room 2" / "Sports day" / "race.jpg"
    instagram = home.outbox_for("instagram") / "Room 2" / "Sports day" / "race.jpg"
    before = facebook.read_bytes()
    CliRunner().invoke(main, ["posted", "race.jpg", "--channel", "facebook", "--home", str(home.root)])
    # Instagram's copy is collected: the manager moves it out of the outbox.
    shutil.move(instagram, home.root / "collected.jpg")

    # Ada's parents withdraw consent: the copy still in the outbox is re-made where it is.
    home.roster_csv.write_text(NO_ADA, encoding="utf-8")
    sync_roster(home, processor.conn)
    processor.reload_roster()
    changes = recheck_outbox(processor)
    assert sorted((c.channel, c.action, c.path) for c in changes) == [
        ("facebook", "rerendered", "outbox/facebook/Room 2/Sports day/race.jpg"),
        ("twitter", "rerendered", "outbox/twitter/Room 2/Sports day/race.jpg")]
    assert "outbox facebook/Room 2/Sports day/race.jpg: rerendered" in changes[0].describe()
    assert facebook.exists() and facebook.read_bytes() != before
    assert not instagram.exists()
    items = takedown_list(processor.conn, home=home)
    assert sorted((i.channel, i.how, i.name) for i in items) == [
        ("facebook", "posted", "Room 2/Sports day/race.jpg"), ("instagram", "collected", "Room 2/Sports day/race.jpg")]
    done = CliRunner().invoke(main, ["takedown", "done", *(str(i.file_id) for i in items), "--home", str(home.root)])
    assert done.exit_code == 0, done.output
    assert "Room 2/Sports day/race.jpg marked taken down" in done.output
    assert takedown_list(processor.conn, home=home) == []

    # Moved into another folder of the outbox by the manager: still in the outbox, followed there.
    moved = home.outbox_for("twitter") / "done" / "race.jpg"
    moved.parent.mkdir()
    shutil.move(home.outbox_for("twitter") / "Room 2" / "Sports day" / "race.jpg", moved)
    [photo] = list_outbox(home, processor.conn, "twitter")
    assert photo.path == moved and photo.shown_name == "done/race.jpg"


def test_review_release_goes_to_the_drop_folder_and_failed_says_where(home):
    from photoguard.flow.review import review_queue
    from photoguard.flow.release import release

    processor = Processor(home, detector=FirstLookMisses())
    drop_in(home, "Room 2/held.jpg", seed=36)
    (home.inbox / "Room 2" / "junk.jpg").write_bytes(b"not a photo")
    results = {r.source: r for r in run_batch(processor, collect([home.inbox]))}
    assert results["held.jpg"].status == "review" and results["junk.jpg"].status == "failed"
    # Review and failed stay one folder each (their photos are named by file name alone) ...
    assert (home.review / "held.jpg").exists() and (home.failed / "junk.jpg").exists()
    # ... the note in failed/ says where it was dropped ...
    assert "inbox/Room 2/" in (home.failed / "junk.jpg.txt").read_text()
    # ... and a release puts the photo in the folder it was dropped in.
    [item] = review_queue(home, processor.conn)
    placed = release(home, processor.conn, item.name, ["facebook"], actor="tester").files
    assert placed["facebook"] == home.outbox_for("facebook") / "Room 2" / "held.jpg"


def test_web_outbox_shows_folders_and_zips_them(home, processor):
    from starlette.testclient import TestClient
    from webhome import BASE, ORIGIN, PIN

    from photoguard.web.app import create_app

    drop_in(home, "Room 2/Sports day/x.jpg", seed=37)
    drop_in(home, "x.jpg", seed=38)
    run_batch(processor, collect([home.inbox]))
    client = TestClient(create_app(home), base_url=BASE, follow_redirects=False)
    assert client.post("/setup", data={"pin": PIN, "repeat": PIN}, headers=ORIGIN).status_code == 303
    page = client.get("/outbox").text
    assert '<span class="folder">Room 2/Sports day/</span>x.jpg' in page
    data = client.get("/outbox/facebook/all.zip").content
    names = sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert names == ["Room 2/Sports day/x.jpg", "x.jpg"]
