"""The decision core without images: who is shown on which channel."""

from datetime import date

from photoguard.consent import ChildConsent
from photoguard.identify import Identity
from photoguard.detect import same_face
from photoguard.pipeline import OBSCURED, SHOWN, decide, is_candidate

TODAY = date(2026, 11, 24)
CHANNELS = ("facebook", "instagram")
CONSENTS = {
    "ada": ChildConsent("ada", "Ada", True, {"facebook": True, "instagram": True}),
    "grace": ChildConsent("grace", "Grace", True, {"facebook": True, "instagram": False}),
    "old": ChildConsent("old", "Old", True, {"facebook": True, "instagram": True}, expires=date(2026, 11, 23)),
}


def ident(child, reason="matched", distance=0.3):
    return Identity(child, distance if child else None, None, reason)


def test_identified_child_with_consent_is_shown():
    d = decide([ident("ada")], CONSENTS, CHANNELS, TODAY)
    assert [a for a, _, _ in d["facebook"]] == [SHOWN]
    assert [a for a, _, _ in d["instagram"]] == [SHOWN]


def test_channel_without_consent_obscures():
    d = decide([ident("grace")], CONSENTS, CHANNELS, TODAY)
    assert d["facebook"][0][0] == SHOWN
    assert d["instagram"][0][:2] == (OBSCURED, "no consent for instagram")


def test_unknown_and_too_small_are_obscured_with_their_reason():
    d = decide([ident(None, "no enrolled child close enough"), ident(None, "too small to identify")],
               CONSENTS, CHANNELS, TODAY)
    for channel in CHANNELS:
        assert [(a, r) for a, r, _ in d[channel]] == [
            (OBSCURED, "no enrolled child close enough"), (OBSCURED, "too small to identify")]


def test_expired_or_unlisted_child_is_obscured():
    d = decide([ident("old"), ident("nobody")], CONSENTS, CHANNELS, TODAY)
    assert [a for a, _, _ in d["facebook"]] == [OBSCURED, OBSCURED]
    assert "expired" in d["facebook"][0][1]


def test_no_faces_no_actions():
    assert decide([], CONSENTS, CHANNELS, TODAY) == {"facebook": [], "instagram": []}


def test_same_face_overlap_rule():
    assert same_face((0, 0, 100, 100), (10, 10, 110, 110))
    assert same_face((0, 0, 100, 100), (40, 40, 60, 60))      # one inside the other
    assert not same_face((0, 0, 100, 100), (150, 0, 250, 100))


def test_partial_copies_and_system_files_are_ignored():
    from pathlib import Path

    for name in ("a.jpg.tmp", "a.part", "a.crdownload", "~$a.jpg", ".hidden.jpg", ".DS_Store", "Thumbs.db", "desktop.ini"):
        assert not is_candidate(Path(name)), name
    for name in ("IMG_0001.JPG", "photo.heic", "notes.txt"):
        assert is_candidate(Path(name)), name
