"""``photoguard reprocess``: photos processed before the children were enrolled come out right afterwards;
copies already collected are not replaced; the status flag; --since, --child and names."""

from __future__ import annotations

from datetime import date, timedelta

from click.testing import CliRunner
from facekit import jpeg_bytes
from test_pipeline import ROSTER, FirstLookMisses, diff, drop, photo_of_both, region, write_reference_photos

from photoguard.cli import main
from photoguard.flow.pipeline import Processor
from photoguard.flow.reprocess import ReprocessError, select_photos
from photoguard.store.db import connect
from photoguard.store.home import open_home
from photoguard.store.roster import sync_roster


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def crop(rgb, box):
    return rgb[box[1]:box[3], box[0]:box[2]]


def test_photos_processed_before_enrolment_come_out_right_after_reprocess(tmp_path):
    home = open_home(tmp_path / "home")
    root = str(home.root)
    party, boxes = photo_of_both(seed=1)
    (home.inbox / "party.jpg").write_bytes(jpeg_bytes(party, quality=95))
    (home.inbox / "picnic.jpg").write_bytes(jpeg_bytes(photo_of_both(seed=2)[0], quality=95))
    out = run("process", "--home", root, "--workers", "1")
    assert "warning: no child is enrolled" in out and "reprocess --before-enrolment" in out
    fb = home.outbox_for("facebook") / "party.jpg"
    ada, grace = boxes["ada"], boxes["grace"]
    assert diff(region(fb, ada), crop(party, ada)) > 15          # nobody enrolled: every face obscured
    assert "before any child was enrolled" not in run("status", "--home", root)   # nothing to redo it with yet

    # The manager enrols Ada and Grace; the picnic's Facebook copy has already been collected.
    write_reference_photos(home.enrol, "ada", "astronaut")
    write_reference_photos(home.enrol, "grace", "hopper")
    home.roster_csv.write_text(ROSTER, encoding="utf-8")
    conn = connect(home.database)
    sync_roster(home, conn)
    (home.outbox_for("facebook") / "picnic.jpg").rename(tmp_path / "picnic-on-the-laptop.jpg")
    assert ("2 photo(s) were processed before any child was enrolled"
            in run("status", "--home", root).replace("\n", " "))

    out = run("reprocess", "--home", root, "--before-enrolment")
    assert "cleared  party.jpg: processed again" in out
    assert "skipped  picnic.jpg: a copy has already left the outbox — facebook (collected)" in out
    # Ada may be shown everywhere, Grace only on Facebook (ROSTER); the copies replaced, not added.
    ig = home.outbox_for("instagram") / "party.jpg"
    assert diff(region(fb, ada), crop(party, ada)) < 4 and diff(region(fb, grace), crop(party, grace)) < 4
    assert diff(region(ig, ada), crop(party, ada)) < 4 and diff(region(ig, grace), crop(party, grace)) > 15
    for channel in home.settings.channels:
        assert sorted(p.name for p in home.outbox_for(channel).iterdir()) == (
            ["party.jpg"] if channel == "facebook" else ["party.jpg", "picnic.jpg"])
    # The picnic is untouched, every original still archived, the history appended.
    assert (home.outbox_for("instagram") / "picnic.jpg").exists()
    photos = conn.execute("SELECT source, archive_path, templates_used FROM photos ORDER BY source").fetchall()
    assert all((home.root / p["archive_path"]).is_file() for p in photos)
    assert [(p["source"], p["templates_used"] > 0) for p in photos] == [("party.jpg", True), ("picnic.jpg", False)]
    ended = conn.execute("SELECT f.channel, f.ended FROM outbox_files f JOIN photos p ON p.sha256 = f.photo_sha256 "
                         "WHERE p.source = 'party.jpg' AND f.ended IS NOT NULL ORDER BY f.channel").fetchall()
    assert [tuple(r) for r in ended] == [("facebook", "replaced"), ("instagram", "replaced"), ("twitter", "replaced")]
    redone = [r[0] for r in conn.execute("SELECT detail FROM events WHERE kind = 'reprocessed'")]
    assert len(redone) == 1 and redone[0].startswith("party.jpg: before: facebook: nobody")
    assert "after: facebook: ada, grace; instagram: ada; twitter: ada" in redone[0]
    assert "1 photo(s) were processed before" in run("status", "--home", root).replace("\n", " ")

    # Choosing photos: by name, by day, by child.
    assert [r["source"] for r in select_photos(conn, ["party"])] == ["party.jpg"]
    assert select_photos(conn, since=date.today() + timedelta(days=1)) == []
    assert len(select_photos(conn, since=date.today())) == 2
    # Ada was recognised in the party; the picnic has faces nobody was recognised in, from before her enrolment.
    assert [r["source"] for r in select_photos(conn, child="ada")] == ["picnic.jpg", "party.jpg"]
    try:
        select_photos(conn, ["sandpit.jpg"])
        raise AssertionError("no error for an unknown name")
    except ReprocessError as exc:
        assert "no processed photo is called sandpit.jpg" in str(exc)
    bad = CliRunner().invoke(main, ["reprocess", "--home", root, "--child", "zoe"])
    assert bad.exit_code != 0 and "no child with the id zoe" in bad.output
    # Again by name: a photo done again is replaced again, never doubled.
    assert "cleared  party.jpg" in run("reprocess", "--home", root, "party.jpg")
    assert sorted(p.name for p in home.outbox_for("twitter").iterdir()) == ["party.jpg", "picnic.jpg"]

    # A photo waiting in review is left to the review.
    held = Processor(home, conn, detector=FirstLookMisses())
    assert held.process(drop(home, "held.jpg", jpeg_bytes(photo_of_both(seed=21)[0]))).status == "review"
    out = run("reprocess", "--home", root, "held.jpg")
    assert "skipped  held.jpg: is waiting in review" in out
    assert [p.name for p in home.review.glob("*.jpg")] == ["held.jpg"]

    # Interrupted after the old copies left the outbox (here: the archived original cannot be decided
    # again): the photo stays archived, status says so, and the next reprocess finishes it.
    archived = home.root / conn.execute("SELECT archive_path FROM photos WHERE source = 'party.jpg'").fetchone()[0]
    kept = archived.read_bytes()
    archived.write_bytes(kept[: len(kept) // 2])
    out = run("reprocess", "--home", root, "party.jpg")
    assert "failed   party.jpg: could not be made again" in out and "original stays archived" in out
    assert not (home.outbox_for("facebook") / "party.jpg").exists()
    assert "were taken out of the outbox to be made again but not finished: party.jpg" in (
        run("status", "--home", root).replace("\n", " "))
    # Its original is now its only copy: purge leaves it, however old.
    from photoguard.flow.audit import purge_archive
    purge_archive(home, conn, today=date.today() + timedelta(days=400))
    assert archived.exists()
    archived.write_bytes(kept)
    out = run("reprocess", "--home", root, "--since", (date.today() + timedelta(days=1)).isoformat())
    assert "cleared  party.jpg: processed again" in out
    assert diff(region(fb, ada), crop(party, ada)) < 4
    assert "not finished" not in run("status", "--home", root)
    conn.close()


def test_reprocess_keeps_the_drop_folder(tmp_path):
    home = open_home(tmp_path / "home")
    root = str(home.root)
    party, boxes = photo_of_both(seed=3)
    (home.inbox / "Room 2" / "Sports day").mkdir(parents=True)
    (home.inbox / "Room 2" / "Sports day" / "party.jpg").write_bytes(jpeg_bytes(party, quality=95))
    run("process", "--home", root, "--workers", "1")
    write_reference_photos(home.enrol, "ada", "astronaut")
    write_reference_photos(home.enrol, "grace", "hopper")
    home.roster_csv.write_text(ROSTER, encoding="utf-8")
    sync_roster(home, connect(home.database))

    assert "cleared  party.jpg" in run("reprocess", "--home", root, "--before-enrolment")
    for channel in home.settings.channels:
        files = sorted(p.relative_to(home.outbox_for(channel)).as_posix()
                       for p in home.outbox_for(channel).rglob("*") if p.is_file())
        assert files == ["Room 2/Sports day/party.jpg"]
    fb = home.outbox_for("facebook") / "Room 2" / "Sports day" / "party.jpg"
    assert diff(region(fb, boxes["ada"]), crop(party, boxes["ada"])) < 4
    # Done twice, still one photo in today's counts and in the list of last photos.
    status = run("status", "--home", root)
    assert "today: 1 cleared" in status and status.count("party.jpg") == 1
    # The photo decided again keeps the name and folder it was dropped with, in the same step as the
    # decision (a run killed before publishing would otherwise resume into the outbox's top folder).
    row = connect(home.database).execute("SELECT source_path, plan FROM photos WHERE source = 'party.jpg'").fetchone()
    assert "archive" not in row["source_path"] and '"folder": "Room 2/Sports day"' in row["plan"]


def test_a_consent_withdrawn_while_photos_are_checked_again_is_obeyed(tmp_path):
    """The pages' Check again keeps one processor for a whole day's photos; a consent withdrawn on the Children
    page meanwhile must decide the photos made after it (its own outbox pass skips a photo being made again)."""
    from photoguard.flow.reprocess import redo_photo

    home = open_home(tmp_path / "home")
    write_reference_photos(home.enrol, "ada", "astronaut")
    write_reference_photos(home.enrol, "grace", "hopper")
    home.roster_csv.write_text(ROSTER, encoding="utf-8")
    conn = connect(home.database)
    sync_roster(home, conn)
    party, boxes = photo_of_both(seed=1)
    processor = Processor(home, conn)
    result = processor.process(drop(home, "party.jpg", jpeg_bytes(party, quality=95)))
    fb = home.outbox_for("facebook") / "party.jpg"
    assert diff(region(fb, boxes["grace"]), crop(party, boxes["grace"])) < 4      # Grace shown on Facebook
    # Grace's parents withdraw Facebook on the Children page (another connection, another process).
    home.roster_csv.write_text(ROSTER.replace("grace,Grace,yes,yes,no,no", "grace,Grace,yes,no,no,no"), encoding="utf-8")
    other = connect(home.database)
    sync_roster(home, other)
    other.close()
    redo_photo(processor, result.sha256)
    assert diff(region(fb, boxes["grace"]), crop(party, boxes["grace"])) > 15     # obscured in the new copy
    assert diff(region(fb, boxes["ada"]), crop(party, boxes["ada"])) < 4
    conn.close()
