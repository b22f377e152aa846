"""Review commands, audit export and purge through the CLI, on a real home and database."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from datetime import date, timedelta

from click.testing import CliRunner
from facekit import jpeg_bytes, scene

from photoguard.cli import main
from photoguard.flow.audit import purge_archive
from photoguard.store.localtime import now_iso
from photoguard.store.db import connect
from photoguard.store.home import open_home


def make_review_item(home, name: str = "held") -> str:
    """A review item as the pipeline leaves it: the candidate JPEG, its note, the journal row."""
    rgb, _ = scene(320, 240, [], seed=1)
    (home.review / f"{name}.jpg").write_bytes(jpeg_bytes(rgb))
    sha = (name.encode().hex() * 64)[:64]
    (home.review / f"{name}.json").write_text(json.dumps(
        {"source": f"{name}.jpg", "sha256": sha, "reason": "a face was found only on the second look", "created": now_iso()}))
    conn = connect(home.database)
    conn.execute("INSERT INTO photos (sha256, source, state, outcome, reason, received_at, finished_at) "
                  "VALUES (?, ?, 'done', 'review', 'second look', ?, ?)", (sha, f"{name}.jpg", now_iso(), now_iso()))
    conn.close()
    return sha


def test_review_list_release_reject(tmp_path):
    """Items whose original is no longer archived: listed, not releasable (the review copy is never
    published), rejectable. Releases from the archived original are tested in test_review.py."""
    home = open_home(tmp_path)
    runner = CliRunner()
    sha = make_review_item(home, "held")
    make_review_item(home, "other")
    out = runner.invoke(main, ["review", "list", "--home", str(tmp_path)])
    assert out.exit_code == 0 and "held" in out.output and "second look" in out.output

    out = runner.invoke(main, ["review", "release", "held", "--channel", "facebook", "--home", str(tmp_path)])
    assert out.exit_code != 0 and "no longer in the archive" in out.output and "review reject" in out.output
    assert list(home.outbox_for("facebook").iterdir()) == []

    out = runner.invoke(main, ["review", "release", "nope", "--home", str(tmp_path)])
    assert out.exit_code != 0 and "review list" in out.output
    out = runner.invoke(main, ["review", "release", "other", "--channel", "myspace", "--home", str(tmp_path)])
    assert out.exit_code != 0 and "unknown channel" in out.output

    for name in ("held", "other"):
        out = runner.invoke(main, ["review", "reject", name, "--home", str(tmp_path)])
        assert out.exit_code == 0 and f"rejected {name}" in out.output
    assert list(home.review.iterdir()) == []
    conn = connect(home.database)
    assert conn.execute("SELECT outcome FROM photos WHERE sha256 = ?", (sha,)).fetchone()[0] == "rejected"
    kinds = [r[0] for r in conn.execute("SELECT kind FROM events ORDER BY id")]
    assert kinds == ["rejected", "rejected"]


def test_audit_csv_export(tmp_path):
    home = open_home(tmp_path)
    sha = make_review_item(home)
    conn = connect(home.database)
    conn.execute("INSERT INTO faces (photo_sha256, idx, box, score, child_id, distance, reason) "
                 "VALUES (?, 0, '[1,2,3,4]', 0.9, 'ada', 0.31, 'matched')", (sha,))
    conn.execute("INSERT INTO face_actions VALUES (?, 0, 'facebook', 'shown', 'consent for facebook', '{}')", (sha,))
    out = CliRunner().invoke(main, ["audit", "--csv", "--home", str(tmp_path)])
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.output)))
    face_rows = [r for r in rows if r["child"] == "ada"]
    assert face_rows[0]["channel"] == "facebook" and face_rows[0]["action"] == "shown"
    out = CliRunner().invoke(main, ["audit", "--since", (date.today() + timedelta(days=1)).isoformat(), "--home", str(tmp_path)])
    assert len(list(csv.DictReader(io.StringIO(out.output)))) == 0


def test_purge_deletes_only_old_originals_and_reports(tmp_path):
    home = open_home(tmp_path)
    conn = connect(home.database)
    for name, days_ago in (("old.jpg", 40), ("new.jpg", 2)):
        day = date.today() - timedelta(days=days_ago)
        (home.archive / day.isoformat()).mkdir(exist_ok=True)
        (home.archive / day.isoformat() / name).write_bytes(b"x")
        conn.execute("INSERT INTO photos (sha256, source, state, outcome, archive_path, received_at, finished_at) "
                     "VALUES (?, ?, 'done', 'cleared', ?, ?, ?)",
                     (name, name, f"archive/{day.isoformat()}/{name}", day.isoformat(), f"{day.isoformat()}T10:00:00+00:00"))
    old_report = home.reports / "report-2026-01-01.html"
    old_report.write_text("<html>")
    (home.archive / "duplicates").mkdir()
    old_copy = home.archive / "duplicates" / "copy.jpg"
    old_copy.write_bytes(b"x")
    (home.archive / "duplicates" / "fresh.jpg").write_bytes(b"y")
    past = time.time() - 40 * 86400
    for path in (old_report, old_copy):
        os.utime(path, (past, past))
    purged = purge_archive(home, conn)
    assert sorted(p.source for p in purged) == ["copy.jpg", "old.jpg", "report-2026-01-01.html"]
    assert (home.archive / "duplicates" / "fresh.jpg").exists()
    assert not list((home.archive).rglob("old.jpg")) and list(home.archive.rglob("new.jpg"))
    assert conn.execute("SELECT archive_path FROM photos WHERE sha256 = 'old.jpg'").fetchone()[0] is None
    out = CliRunner().invoke(main, ["purge", "--home", str(tmp_path)])
    assert out.exit_code == 0 and "0 archived original(s) deleted" in out.output
