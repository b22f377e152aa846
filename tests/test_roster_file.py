"""Editing children.csv for the manager: her format kept byte for byte, read back by enrol as she meant."""

from __future__ import annotations

from datetime import date

import pytest

from photoguard.store.home import open_home
from photoguard.store.roster_csv import parse_roster
from photoguard.store.roster_file import ChildEntry, RosterFileError, fingerprint, read_child, remove_child, save_child

CHANNELS = ("facebook", "instagram", "twitter")
EXCEL = ("\ufeffid;name;face_matching;facebook;instagram;twitter;expires;room\r\n"
         "amy;Amy Smith;Yes;Yes;No;No;2027-08-31;Ducklings\r\n"
         "\r\n"
         "ben;Ben \"Benji\" Jones;Yes;No;No;No;;Owls\r\n"
         "zoe;Zoë;No;No;No;No;;Owls\r\n")


@pytest.fixture
def home(tmp_path):
    h = open_home(tmp_path)
    h.roster_csv.write_bytes(EXCEL.encode("utf-8"))
    return h


def test_edit_rewrites_only_that_line_in_her_format(home):
    entry = read_child(home, "ben")
    assert entry.name == 'Ben "Benji" Jones' and entry.face_matching and not entry.channels["facebook"]
    entry.channels["facebook"] = True
    entry.expires = date(2027, 7, 1)
    save_child(home, entry, new=False, expect=fingerprint(home.roster_csv))
    after = home.roster_csv.read_bytes().decode("utf-8")
    assert after == EXCEL.replace("ben;Ben \"Benji\" Jones;Yes;No;No;No;;Owls",
                                  "ben;\"Ben \"\"Benji\"\" Jones\";Yes;Yes;No;No;2027-07-01;Owls")
    parsed = parse_roster(home.roster_csv, CHANNELS)
    ben = next(r for r in parsed.rows if r.child_id == "ben")
    assert ben.channels["facebook"] and ben.expires == date(2027, 7, 1) and ben.name == 'Ben "Benji" Jones'
    assert not parsed.problems


def test_add_appends_in_the_same_style(home):
    save_child(home, ChildEntry("cara", "Cara", True, {"facebook": True, "instagram": False, "twitter": False}), new=True)
    text = home.roster_csv.read_bytes()
    assert text.startswith(b"\xef\xbb\xbf") and text.decode("utf-8-sig").startswith(EXCEL[1:])
    assert text.endswith("cara;Cara;Yes;Yes;No;No;;\r\n".encode())
    assert [r.child_id for r in parse_roster(home.roster_csv, CHANNELS).rows] == ["amy", "ben", "zoe", "cara"]
    with pytest.raises(RosterFileError, match="already a child"):
        save_child(home, ChildEntry("Cara", "x"), new=True)
    with pytest.raises(RosterFileError, match="only letters"):
        save_child(home, ChildEntry("../x", "x"), new=True)


def test_remove_keeps_everything_else(home):
    remove_child(home, "amy")
    assert home.roster_csv.read_bytes().decode("utf-8") == EXCEL.replace("amy;Amy Smith;Yes;Yes;No;No;2027-08-31;Ducklings\r\n", "")


def test_a_change_made_meanwhile_is_not_overwritten(home):
    seen = fingerprint(home.roster_csv)
    home.roster_csv.write_bytes(home.roster_csv.read_bytes() + b"dan;Dan;No;No;No;No;;\r\n")
    with pytest.raises(RosterFileError, match="changed somewhere else"):
        save_child(home, ChildEntry("amy", "Amy"), new=False, expect=seen)
    assert b"dan;Dan" in home.roster_csv.read_bytes()


def test_new_roster_and_missing_columns(tmp_path):
    h = open_home(tmp_path)
    save_child(h, ChildEntry("amy", "Amy", True, {"facebook": True}), new=True)
    rows = parse_roster(h.roster_csv, CHANNELS).rows
    assert rows[0].channels == {"facebook": True, "instagram": False, "twitter": False}
    # An old Excel file in Windows-1252 stays Windows-1252.
    h.roster_csv.write_text("id,name\n# a comment the manager wrote\nbo,Bé\n", encoding="cp1252")
    save_child(h, ChildEntry("bo", "Bø", True, {"twitter": True}, date(2027, 1, 2)), new=False)
    text = h.roster_csv.read_text(encoding="cp1252")
    assert text.startswith("id,name,face_matching,facebook,instagram,twitter,expires\n# a comment the manager wrote\n")
    assert "bo,Bø,yes,no,no,yes,2027-01-02\n" in text


def _starter_shapes(text: str) -> dict[str, bytes]:
    """The starter children.csv as `init` writes it, and as Excel may save it back."""
    semicolon = "\n".join(line if line.startswith("#") else line.replace(",", ";") for line in text.split("\n"))
    return {"as written": text.encode("utf-8"), "with a BOM": ("\ufeff" + text).encode("utf-8"),
            "semicolons": semicolon.encode("utf-8"), "Excel's CRLF": text.replace("\n", "\r\n").encode("utf-8")}


@pytest.mark.parametrize("shape", ["as written", "with a BOM", "semicolons", "Excel's CRLF"])
def test_first_child_added_to_the_starter_file_from_init(tmp_path, shape):
    """The starter file begins with comment lines: the first child added goes under the real header (the
    page took the first comment as the header and wrote ',mia,Mia Jones,...')."""
    from click.testing import CliRunner

    from photoguard.cli import main

    assert CliRunner().invoke(main, ["init", str(tmp_path / "home")]).exit_code == 0
    home = open_home(tmp_path / "home")
    home.roster_csv.write_bytes(_starter_shapes(home.roster_csv.read_text(encoding="utf-8"))[shape])
    before = home.roster_csv.read_bytes()
    mia = ChildEntry(child_id="mia", name="Mia Jones", face_matching=True,
                     channels={"facebook": True, "instagram": False, "twitter": True})
    save_child(home, mia, new=True, expect=fingerprint(home.roster_csv))

    after = home.roster_csv.read_bytes()
    assert after.startswith(before.rstrip(b"\r\n"))   # her notes and example kept as they were
    parsed = parse_roster(home.roster_csv, CHANNELS)
    assert not parsed.problems, parsed.problems
    assert [(r.child_id, r.name, r.face_matching, r.channels) for r in parsed.rows] == [
        ("mia", "Mia Jones", True, {"facebook": True, "instagram": False, "twitter": True})]
    assert read_child(home, "mia").name == "Mia Jones"
    with pytest.raises(RosterFileError, match="already a child"):
        save_child(home, mia, new=True)
