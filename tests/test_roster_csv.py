from datetime import date
from pathlib import Path

import pytest

from photoguard.store.roster_csv import RosterError, parse_roster

CHANNELS = ("facebook", "instagram", "twitter")


def write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "children.csv"
    path.write_bytes(text.encode(encoding))
    return path


def by_id(result):
    return {row.child_id: row for row in result.rows}


def test_reads_a_normal_roster(tmp_path):
    path = write(tmp_path, "id,name,face_matching,facebook,instagram,twitter,expires\n"
                           "amy,Amy Pond,yes,yes,no,yes,2026-08-31\n"
                           "ben,Ben,no,yes,yes,yes,\n")
    result = parse_roster(path, CHANNELS)
    assert not result.problems and not result.warnings
    rows = by_id(result)
    assert rows["amy"].name == "Amy Pond" and rows["amy"].face_matching
    assert rows["amy"].channels == {"facebook": True, "instagram": False, "twitter": True}
    assert rows["amy"].expires == date(2026, 8, 31)
    assert rows["ben"].face_matching is False
    assert result.lines == {"amy": 2, "ben": 3}


def test_utf8_bom_and_accents(tmp_path):
    path = write(tmp_path, "\ufeffid,name,face_matching,facebook,instagram,twitter,expires\r\n"
                           "zoe,Zoë Müller,yes,yes,yes,yes,\r\n")
    result = parse_roster(path, CHANNELS)
    assert not result.problems and not result.warnings
    assert by_id(result)["zoe"].name == "Zoë Müller"


def test_semicolons_from_european_excel(tmp_path):
    path = write(tmp_path, "id;name;face_matching;facebook;instagram;twitter;expires\n"
                           "amy;Pond, Amy;yes;no;yes;no;2026-08-31\n")
    result = parse_roster(path, CHANNELS)
    assert not result.problems
    row = by_id(result)["amy"]
    assert row.name == "Pond, Amy"
    assert row.channels == {"facebook": False, "instagram": True, "twitter": False}


def test_yes_no_variants_any_case_and_spaces(tmp_path):
    path = write(tmp_path, "ID , Name , Face Matching , facebook , instagram , twitter , expires\n"
                           "a, A , Y ,TRUE, 1 , Yes ,\n"
                           "b,B, n ,False,0,NO,\n"
                           "c,C,yes,,maybe,yes,\n")
    result = parse_roster(path, CHANNELS)
    rows = by_id(result)
    assert rows["a"].face_matching and all(rows["a"].channels.values()) and rows["a"].problem is None
    assert not rows["b"].face_matching and not any(rows["b"].channels.values()) and rows["b"].problem is None
    # blank = no; an unreadable answer makes the whole row "no consent" and is reported
    assert rows["c"].problem and "instagram is 'maybe'" in rows["c"].problem
    assert [(p.line, "maybe" in p.message) for p in result.problems] == [(4, True)]
    assert str(result.problems[0]).startswith(f"{path}:4: ")


def test_bad_dates_are_row_problems(tmp_path):
    path = write(tmp_path, "id,name,face_matching,facebook,instagram,twitter,expires\n"
                           "a,A,yes,yes,yes,yes,31/08/2026\n"
                           "b,B,yes,yes,yes,yes,2026-02-30\n"
                           "c,C,yes,yes,yes,yes,20260831\n"
                           "d,D,yes,yes,yes,yes,2026-08-31\n")
    result = parse_roster(path, CHANNELS)
    rows = by_id(result)
    for cid in "abc":
        assert rows[cid].problem and "YYYY-MM-DD" in rows[cid].problem
    assert rows["d"].problem is None
    assert [p.line for p in result.problems] == [2, 3, 4]


def test_blank_expires_means_no_expiry(tmp_path):
    path = write(tmp_path, "id,face_matching,facebook,instagram,twitter,expires\n"
                           "a,yes,yes,yes,yes,   \n")
    row = by_id(parse_roster(path, CHANNELS))["a"]
    assert row.expires is None and row.problem is None


def test_duplicate_ids_mean_no_consent_for_both(tmp_path):
    path = write(tmp_path, "id,name,face_matching,facebook,instagram,twitter,expires\n"
                           "amy,Amy,yes,yes,yes,yes,\n"
                           "ben,Ben,yes,yes,yes,yes,\n"
                           "AMY,Amy again,yes,yes,yes,yes,\n")
    result = parse_roster(path, CHANNELS)
    rows = by_id(result)
    assert rows["amy"].problem and "lines 2, 4" in rows["amy"].problem
    assert not rows["amy"].face_matching and not any(rows["amy"].channels.values())
    assert "AMY" not in rows
    assert rows["ben"].problem is None
    assert len(result.problems) == 1 and result.problems[0].line == 2


def test_path_like_ids_are_rejected(tmp_path):
    path = write(tmp_path, "id,name,face_matching,facebook,instagram,twitter,expires\n"
                           "../x,X,yes,yes,yes,yes,\n"
                           "a/b,AB,yes,yes,yes,yes,\n"
                           "ok-1_2,OK,yes,yes,yes,yes,\n"
                           ",Nobody,yes,yes,yes,yes,\n")
    result = parse_roster(path, CHANNELS)
    assert set(by_id(result)) == {"ok-1_2"}
    assert [p.line for p in result.problems] == [2, 3, 5]
    assert "only letters, digits" in result.problems[0].message


def test_unknown_columns_warn_and_are_ignored(tmp_path):
    path = write(tmp_path, "id,name,face_matching,facebook,instagram,twitter,expires,room,tiktok\n"
                           "a,A,yes,yes,yes,yes,,Blue,yes\n")
    result = parse_roster(path, CHANNELS)
    assert not result.problems
    assert sorted(w.message.split("'")[1] for w in result.warnings) == ["room", "tiktok"]
    assert "tiktok" not in by_id(result)["a"].channels


def test_missing_channel_column_is_no_for_everyone(tmp_path):
    path = write(tmp_path, "id,name,face_matching,facebook,expires\n"
                           "a,A,yes,yes,\n")
    result = parse_roster(path, CHANNELS)
    assert by_id(result)["a"].channels == {"facebook": True, "instagram": False, "twitter": False}
    messages = " ".join(w.message for w in result.warnings)
    assert "no 'instagram' column" in messages and "no 'twitter' column" in messages


def test_missing_face_matching_column_means_nobody_matched(tmp_path):
    path = write(tmp_path, "id,facebook,instagram,twitter\na,yes,yes,yes\n")
    result = parse_roster(path, CHANNELS)
    assert by_id(result)["a"].face_matching is False
    assert any("face_matching" in w.message for w in result.warnings)


@pytest.mark.parametrize("text", ["", "\n\n", "\ufeff", " ; ; \n"])
def test_empty_file_is_a_clear_error(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(RosterError, match="children.csv is empty"):
        parse_roster(path, CHANNELS)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(RosterError, match="children.csv not found.*id,name,face_matching"):
        parse_roster(tmp_path / "children.csv", CHANNELS)


def test_missing_id_column_is_a_clear_error(tmp_path):
    path = write(tmp_path, "child,name,face_matching\namy,Amy,yes\n")
    with pytest.raises(RosterError, match=r"children.csv:1: the header has no 'id' column"):
        parse_roster(path, CHANNELS)


def test_duplicate_header_column_is_a_clear_error(tmp_path):
    path = write(tmp_path, "id,facebook,Facebook\namy,yes,no\n")
    with pytest.raises(RosterError, match="'facebook' appears twice"):
        parse_roster(path, CHANNELS)


def test_windows_1252_is_read_with_a_warning(tmp_path):
    path = write(tmp_path, "id,name,face_matching,facebook,instagram,twitter,expires\nzoe,Zoë,yes,yes,yes,yes,\n", "cp1252")
    result = parse_roster(path, CHANNELS)
    assert by_id(result)["zoe"].name == "Zoë"
    assert any("UTF-8" in w.message for w in result.warnings)


def test_blank_lines_and_trailing_separators_are_skipped(tmp_path):
    path = write(tmp_path, "\nid;name;face_matching;facebook;instagram;twitter;expires\n"
                           "a;A;yes;yes;yes;yes;\n;;;;;;\n\n")
    result = parse_roster(path, CHANNELS)
    assert set(by_id(result)) == {"a"} and not result.problems
    assert result.lines["a"] == 3
