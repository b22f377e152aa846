"""Ids and names with bounds (issue 22 item 3): a value too long for the file system or the CSV reader is
a problem on its line, in words; it never stops enrol, the watcher, the pages or another child's withdrawal.

A real home (Ada and Grace enrolled, one photo of both in every outbox), the real CLI, the real web app
and a real ``photoguard watch``."""

from __future__ import annotations

import re

import numpy as np
import webhome
from click.testing import CliRunner
from test_watch import Watch, tiny_jpeg, wait_until
from test_web_pages import client, fingerprint, pixels, post, web  # noqa: F401

from photoguard.cli import main
from photoguard.store.db import connect
from photoguard.store.roster_csv import MAX_ID_CHARS, MAX_NAME_CHARS, parse_roster

CHANNELS = ("facebook", "instagram", "twitter")
LONG_ID = "x" * 300                    # far over any file system's 255 bytes for a name
HUGE_NAME = "N" * 140_000              # over the CSV reader's 131,072-character field limit


def _roster(web, *extra: str) -> None:
    web.home.roster_csv.write_text(webhome.CSV + "".join(f"{line}\n" for line in extra), encoding="utf-8")


def test_the_file_says_what_is_wrong_on_each_line_and_reads_the_rest(tmp_path):
    path = tmp_path / "children.csv"
    path.write_text(webhome.CSV + f"{LONG_ID},Long,yes,yes,yes,yes,\n"
                    f"huge,{HUGE_NAME},yes,yes,yes,yes,\n"
                    f"wordy,{'W' * (MAX_NAME_CHARS + 1)},yes,yes,yes,yes,\n"
                    "zoe,Zoe,yes,yes,no,no,\n", encoding="utf-8")
    parsed = parse_roster(path, CHANNELS)
    assert [r.child_id for r in parsed.rows] == ["ada", "grace", "wordy", "zoe"]
    words = {p.line: p.words() for p in parsed.problems}
    assert words[4].startswith(f"Line 4 of children.csv: the id 'xxxxxxxxxxxxxxxxxxxx…' is 300 characters long; "
                               f"an id is at most {MAX_ID_CHARS}")
    assert words[5].startswith("Line 5 of children.csv: this line is 140,022 characters long")
    assert "the name is 101 characters long; write at most 100" in words[6] and "no consent" in words[6]
    wordy = next(r for r in parsed.rows if r.child_id == "wordy")
    assert wordy.problem   # a row with a problem means no consent (consent.may_show)
    assert len(wordy.name) == MAX_NAME_CHARS
    assert sorted(parsed.lines) == ["ada", "grace", "wordy", "zoe"] and parsed.lines["zoe"] == 7


def test_enrol_says_it_in_words_and_syncs_every_other_child(web):
    _roster(web, f"{LONG_ID},Long,yes,yes,yes,yes,", f"huge,{HUGE_NAME},yes,yes,yes,yes,")
    done = CliRunner().invoke(main, ["enrol", "--home", str(web.home.root)])
    assert done.exit_code == 1 and "every other child was enrolled" in done.output, done.output
    assert "Traceback" not in done.output and "File name too long" not in done.output
    assert "is 300 characters long" in done.output and "140,022 characters long" in done.output
    conn = connect(web.home.database)
    assert [r[0] for r in conn.execute("SELECT id FROM children ORDER BY id")] == ["ada", "grace"]
    conn.close()
    shown = CliRunner().invoke(main, ["children", "show", LONG_ID, "--home", str(web.home.root)])
    assert shown.exit_code == 1 and "at most 64" in shown.output and "Traceback" not in shown.output


def test_the_form_refuses_a_long_id_or_name_in_words_and_writes_nothing(client, web):
    before = web.home.roster_csv.read_bytes()
    for data, words in [({"child_id": "a" * (MAX_ID_CHARS + 1), "name": "Amy"},
                         "The child&#39;s id is 65 characters long: write at most 64"),
                        ({"child_id": "amy", "name": "A" * (MAX_NAME_CHARS + 1)},
                         "The name is 101 characters long; write at most 100.")]:
        r = post(client, "/children/new", {**data, "fingerprint": fingerprint(client, "/children/new")})
        assert r.status_code == 400 and words in r.text, r.text[-2000:]
    assert web.home.roster_csv.read_bytes() == before
    assert client.get(f"/children/{LONG_ID}").status_code == 404
    assert 'maxlength="64"' in client.get("/children/new").text


def test_withdrawing_another_child_while_a_bad_line_is_there_remakes_her_copies(client, web):
    _roster(web, f"{LONG_ID},Long,yes,yes,yes,yes,", f"huge,{HUGE_NAME},yes,yes,yes,yes,")
    r = post(client, "/children/grace/withdraw", {"fingerprint": fingerprint(client, "/children/grace/withdraw")})
    assert r.status_code == 303
    assert "Consent withdrawn for Grace" in client.get("/children/grace").text
    rgb, boxes = webhome.photo_of_both(seed=3)
    g = boxes["grace"]
    conn = connect(web.home.database)
    rows = conn.execute("SELECT path FROM outbox_files WHERE ended IS NULL").fetchall()
    consent = conn.execute("SELECT face_matching FROM children WHERE id = 'grace'").fetchone()[0]
    conn.close()
    assert consent == 0 and rows
    for row in rows:   # every copy still in the outbox shows Grace obscured
        assert np.abs(pixels(web.home.root / row["path"], g) - rgb.astype(np.int16)[g[1]:g[3], g[0]:g[2]]).mean() > 15
    # The lines she did not touch are still there, as they were.
    text = web.home.roster_csv.read_text(encoding="utf-8")
    assert f"{LONG_ID},Long,yes,yes,yes,yes," in text and HUGE_NAME in text
    assert re.search(r"grace,Grace,no,no,no,no,", text)
    assert "Line 4 of children.csv" in client.get("/children").text


def test_the_watcher_keeps_working_with_a_bad_line_in_the_roster(web):
    _roster(web, f"{LONG_ID},Long,yes,yes,yes,yes,", f"huge,{HUGE_NAME},yes,yes,yes,yes,")
    watch = Watch(web.home.root).wait_watching()
    try:
        (web.home.inbox / "after.jpg").write_bytes(tiny_jpeg(7))
        wait_until(lambda: (web.home.outbox_for("facebook") / "after.jpg").exists(), 90, "the photo", watch.proc)
    finally:
        code = watch.stop()
    assert code == 0, watch.output()
    assert "is 300 characters long" in watch.output() and "Traceback" not in watch.output()


def test_the_outbox_follows_a_withdrawal_even_when_the_rest_of_the_sync_fails(web):
    """Consents are committed before anything slow; here the face detector cannot be loaded for a new
    reference photo of Ada's (a damaged model file, say): enrol fails, and Grace's copies are re-made."""
    import shutil

    import pytest

    from photoguard.flow.enrol import enrol

    shutil.copy(web.home.enrol / "ada" / "ref0.jpg", web.home.enrol / "ada" / "new.jpg")
    (web.home.enrol / "ada" / "new.jpg").write_bytes((web.home.enrol / "ada" / "new.jpg").read_bytes() + b"\0")
    web.home.roster_csv.write_text(webhome.CSV.replace("grace,Grace,yes,yes,no,no,", "grace,Grace,no,no,no,no,"),
                                   encoding="utf-8")

    def damaged_model():
        raise RuntimeError("the face detector's model file is damaged")

    conn = connect(web.home.database)
    try:
        with pytest.raises(RuntimeError, match="damaged"):
            enrol(web.home, conn, detector=damaged_model)
        rows = conn.execute("SELECT path FROM outbox_files WHERE ended IS NULL").fetchall()
        assert conn.execute("SELECT face_matching FROM children WHERE id = 'grace'").fetchone()[0] == 0
    finally:
        conn.close()
    rgb, boxes = webhome.photo_of_both(seed=3)
    g = boxes["grace"]
    for row in rows:
        assert np.abs(pixels(web.home.root / row["path"], g) - rgb.astype(np.int16)[g[1]:g[3], g[0]:g[2]]).mean() > 15
