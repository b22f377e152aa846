"""Words a manager reads (issue 13, item 6): local times, roster problems said as problems, near ids,
a status that never sounds like a crash, and where a second face is in a reference photo."""

from __future__ import annotations

import os
import re
import time
from datetime import date, datetime

import numpy as np
import pytest
from click.testing import CliRunner
from facekit import jpeg_bytes, scene
from PIL import Image
from test_pipeline import CSV_HEADER, detector, drop, enrolled_home, home, photo_of_both, processor  # noqa: F401

from photoguard.cli.home import status_lines
from photoguard.cli import main
from photoguard.flow.watch_status import Recent, WatchStatus
from photoguard.store.db import connect
from photoguard.store.localtime import when_words


@pytest.fixture
def local_zone():
    """Set the computer's time zone for one test (and put it back)."""
    before = os.environ.get("TZ")

    def set_zone(zone: str) -> None:
        os.environ["TZ"] = zone
        time.tzset()

    yield set_zone
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def run(*args: str):
    return CliRunner().invoke(main, list(args))


# --- times -------------------------------------------------------------------------------------------


def test_stored_times_are_read_in_local_time(local_zone):
    local_zone("Asia/Kolkata")   # UTC+05:30, no summer time
    assert when_words("2026-11-24T10:00:00+00:00", today=date(2026, 11, 30)) == "24 Nov 2026 15:30"
    assert when_words("2026-11-24T23:00:00+00:00", today=date(2026, 11, 25)) == "today 04:30"
    assert when_words("2026-11-24T23:00:00+00:00", today=date(2026, 11, 26)) == "yesterday 04:30"
    assert when_words("2026-11-24", today=date(2026, 11, 30)) == "24 Nov 2026"
    assert when_words("not a time") == "not a time" and when_words(None) == ""


def test_status_and_history_show_local_time(home, processor, local_zone):
    local_zone("UTC")
    rgb, _ = photo_of_both(seed=3)
    processor.process(drop(home, "picnic.jpg", jpeg_bytes(rgb)))
    conn = connect(home.database)
    at = conn.execute("SELECT at FROM events WHERE kind = 'processed'").fetchone()["at"]
    added = conn.execute("SELECT changed_at FROM consent_history WHERE child_id = 'ada'").fetchone()["changed_at"]
    conn.close()

    local_zone("Asia/Kolkata")
    there = datetime.fromisoformat(at).astimezone()
    assert there.utcoffset().total_seconds() == 5.5 * 3600
    out = run("status", "--home", str(home.root))
    assert out.exit_code == 0, out.output
    assert f"{there:%H:%M}  cleared" in out.output
    assert "T" not in out.output.split("last photos:")[1].split("cleared")[0]   # no ISO text
    shown = run("children", "show", "ada", "--home", str(home.root))
    assert when_words(added) in shown.output
    assert f"{datetime.fromisoformat(added).astimezone():%H:%M}" in shown.output


# --- the roster: problems are problems -----------------------------------------------------------------


def test_children_and_enrol_say_problems(home):
    # sam may be matched but has no reference photo; bob's end date cannot be read.
    (home.roster_csv).write_text(CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\ngrace,Grace,yes,yes,no,no,\n"
                                 "sam,Sam,yes,yes,yes,no,\nbob,Bob,yes,yes,yes,yes,31/08/2027\n", encoding="utf-8")
    res = run("enrol", "--home", str(home.root))
    assert res.exit_code == 1, res.output            # something needs the manager ...
    assert "2 line(s) of the roster need fixing" in res.stderr
    conn = connect(home.database)
    assert conn.execute("SELECT COUNT(*) FROM templates WHERE child_id = 'ada'").fetchone()[0] >= 2  # ... the rest synced
    conn.close()
    assert "problem sam: no usable reference photo — add one in enrol/sam/" in res.stdout

    listing = run("children", "--home", str(home.root))
    assert listing.exit_code == 0, listing.output
    rows = {line.split()[0]: line.split() for line in listing.output.splitlines() if line.strip()}
    assert rows["ada"][2:] == ["yes", "yes", "yes", "yes", "-", "ok", "3"]
    assert rows["sam"][2:] == ["yes", "yes", "yes", "no", "-", "PROBLEM", "0"]
    # A line with a problem: no channel says yes, and the unreadable date is not "no end date".
    assert rows["bob"][2:] == ["no", "no", "no", "no", "not", "readable", "PROBLEM", "0"]
    assert "problem sam: no usable reference photo — add one in enrol/sam/" in listing.output
    assert "problem bob: the line in children.csv needs fixing: expires is '31/08/2027'" in listing.output

    shown = run("children", "show", "bob", "--home", str(home.root))
    assert "consent ends: not readable" in shown.output and "never" not in shown.output
    assert "face matching: no" in shown.output
    assert "facebook: obscured" in shown.output

    # Fixed: enrol says nothing is wrong any more (sam now has no face matching, so no photo is needed).
    (home.roster_csv).write_text(CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\ngrace,Grace,yes,yes,no,no,\n"
                                 "sam,Sam,no,no,no,no,\nbob,Bob,yes,yes,no,no,2027-08-31\n", encoding="utf-8")
    res = run("enrol", "--home", str(home.root))
    assert res.exit_code == 1 and "problem bob: no usable reference photo" in res.stdout
    (home.roster_csv).write_text(CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\ngrace,Grace,yes,yes,no,no,\n"
                                 "sam,Sam,no,no,no,no,\nbob,Bob,no,no,no,no,2027-08-31\n", encoding="utf-8")
    res = run("enrol", "--home", str(home.root))
    assert res.exit_code == 0, res.output
    assert "problem" not in res.output


def test_children_show_suggests_near_ids(home):
    res = run("children", "show", "gracie", "--home", str(home.root))
    assert res.exit_code != 0
    assert "no child 'gracie' on the roster. Did you mean grace?" in res.output
    res = run("children", "show", "zzz", "--home", str(home.root))
    assert res.exit_code != 0 and "Did you mean" not in res.output


# --- status in every normal state ------------------------------------------------------------------------

CRASH_WORDS = re.compile(r"error|traceback|exception|crash|journal|pid\b|errno|\bT\d\d:", re.IGNORECASE)


def test_status_reads_calmly_in_normal_states(home, processor):
    def words() -> str:
        res = run("status", "--home", str(home.root))
        assert res.exit_code == 0, res.output
        assert not CRASH_WORDS.search(res.output), res.output
        return res.output

    assert "watcher: not running" in words()                          # a new home, nothing done yet
    rgb, _ = photo_of_both(seed=5)
    processor.process(drop(home, "sports.jpg", jpeg_bytes(rgb)))
    (home.inbox / "junk.jpg").write_bytes(b"not a photo at all")
    processor.process(home.inbox / "junk.jpg")                         # a bad file: normal work too
    drop(home, "waiting.jpg", jpeg_bytes(rgb[::2, ::2]))
    out = words()
    assert "inbox: 1 file(s) waiting" in out
    assert "today: 1 cleared, 0 held for review, 1 not usable (in failed/), 0 duplicate(s)" in out
    assert "in failed/" in out.split("last photos:")[1]

    # A watcher at work, as the status file and the lock say it (what `photoguard watch` writes).
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    busy = WatchStatus(4242, {"pid": 4242, "started": started, "state": "watching", "workers": 2, "in_flight": 1,
                              "waiting": 3}, 3, [("sports.jpg", "deciding")], {"cleared": 2}, [])
    lines = "\n".join(status_lines(busy))
    assert not CRASH_WORDS.search(lines.replace("(process 4242)", "")), lines
    assert "watcher: running since today" in lines and "1 photo(s) in hand, 3 waiting" in lines
    assert "being processed now: 1 photo(s): sports.jpg" in lines
    stopped = WatchStatus(None, None, 0, [("sports.jpg", "publishing")], {}, [Recent(started, "review", "x.jpg", "")])
    lines = "\n".join(status_lines(stopped))
    assert not CRASH_WORDS.search(lines), lines
    assert "finishes them when it next starts (nothing is lost)" in lines and "to review" in lines


# --- reference photos with a second face -------------------------------------------------------------------


def test_second_face_is_named_where_it_is_and_accept_largest_takes_the_child(home):
    # Ada close to the camera; a smaller face (a poster) at the top right behind her.
    rgb, _ = scene(900, 600, [("astronaut", 200, 200, 260), ("hopper", 700, 40, 130)], seed=7)
    Image.fromarray(rgb).save(home.enrol / "ada" / "poster.jpg", quality=92)
    res = run("enrol", "--home", str(home.root))
    assert res.exit_code == 0, res.output   # ada still has three good photos: not a problem
    found = re.search(r"rejected ada/poster.jpg: a second face, top right, at (\d+) % confidence: "
                      r"use a photo of this child alone, or .*--accept-largest", res.stdout)
    assert found, res.stdout
    assert 0 < int(found.group(1)) <= 100
    assert not re.search(r"\d+ ?px|\(\d+, \d+", found.group(0))   # no pixel boxes

    conn = connect(home.database)
    before = conn.execute("SELECT COUNT(*) FROM templates WHERE child_id = 'ada'").fetchone()[0]
    res = run("enrol", "--accept-largest", "--home", str(home.root))
    assert res.exit_code == 0, res.output
    assert "rejected ada/poster.jpg" not in res.stdout
    assert conn.execute("SELECT COUNT(*) FROM templates WHERE child_id = 'ada'").fetchone()[0] == before + 1
    row = conn.execute("SELECT status FROM reference_photos WHERE path = 'ada/poster.jpg'").fetchone()
    assert row["status"] == "accepted"
    # The face taken is Ada's (the largest), not the poster's: it sits with her other templates.
    encs = [np.frombuffer(r[0], dtype="<f8") for r in conn.execute(
        "SELECT t.encoding FROM templates t JOIN reference_photos p ON p.sha256 = t.photo_sha256 "
        "WHERE t.child_id = 'ada' ORDER BY p.path = 'ada/poster.jpg'")]
    grace = [np.frombuffer(r[0], dtype="<f8") for r in conn.execute(
        "SELECT encoding FROM templates WHERE child_id = 'grace'")]
    new, others = encs[-1], encs[:-1]
    assert min(np.linalg.norm(new - o) for o in others) < min(np.linalg.norm(new - g) for g in grace)
    # A plain enrol afterwards keeps it (the manager's choice stands until the photo changes).
    res = run("enrol", "--home", str(home.root))
    assert res.exit_code == 0 and "rejected ada/poster.jpg" not in res.stdout

    # --accept-largest is an answer about photos already rejected for a second face: a photo nobody
    # has been told about (here Grace large in front of Ada in Ada's folder) is checked in full ...
    rgb, _ = scene(900, 600, [("hopper", 150, 150, 300), ("astronaut", 650, 250, 170)], seed=8)
    Image.fromarray(rgb).save(home.enrol / "ada" / "new.jpg", quality=92)
    res = run("enrol", "--accept-largest", "--home", str(home.root))
    assert "rejected ada/new.jpg: a second face" in res.stdout
    assert conn.execute("SELECT status FROM reference_photos WHERE path = 'ada/new.jpg'").fetchone()["status"] == "rejected"
    # ... and so is a photo replaced under a name whose largest face was accepted.
    (home.enrol / "ada" / "new.jpg").unlink()
    rgb, _ = scene(900, 600, [("hopper", 120, 120, 320), ("astronaut", 600, 220, 180)], seed=9)
    Image.fromarray(rgb).save(home.enrol / "ada" / "poster.jpg", quality=92)
    res = run("enrol", "--accept-largest", "--home", str(home.root))
    assert "rejected ada/poster.jpg: a second face" in res.stdout
    assert conn.execute("SELECT COUNT(*) FROM templates WHERE child_id = 'ada'").fetchone()[0] == before
    conn.close()


def test_web_reference_photo_with_a_poster_can_use_the_largest_face(web_template, tmp_path):
    import webhome
    from starlette.testclient import TestClient
    from webhome import BASE, ORIGIN, PIN

    from photoguard.web.app import create_app

    web = webhome.copy(web_template, tmp_path / "home")
    client = TestClient(create_app(web.home), base_url=BASE, follow_redirects=False)
    assert client.post("/setup", data={"pin": PIN, "repeat": PIN}, headers=ORIGIN).status_code == 303
    rgb, _ = scene(900, 600, [("astronaut", 200, 200, 260), ("hopper", 700, 40, 130)], seed=7)
    r = client.post("/children/ada/photos", files={"photo": ("poster.jpg", jpeg_bytes(rgb), "image/jpeg")},
                    headers=ORIGIN)
    assert r.status_code == 200
    assert "Not used: a second face, top right, at" in r.text
    assert "use the largest face</button>" in r.text
    assert "--accept-largest" not in r.text          # the page has a button, not a command
    sha = re.search(r'accept-largest"><input type="hidden" name="photo" value="([0-9a-f]{64})"', r.text).group(1)
    done = client.post("/children/ada/photos/accept-largest", data={"photo": sha}, headers=ORIGIN)
    assert done.status_code == 303
    page = client.get("/children/ada").text
    assert "poster.jpg: the largest face is used now." in page
    assert "use the largest face</button>" not in page
    conn = connect(web.home.database)
    assert conn.execute("SELECT status FROM reference_photos WHERE sha256 = ?", (sha,)).fetchone()["status"] == "accepted"
    conn.close()
    # Only that photo: an unknown one is refused.
    assert client.post("/children/ada/photos/accept-largest", data={"photo": "0" * 64},
                       headers=ORIGIN).status_code == 404
