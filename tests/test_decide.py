"""The decision core without images: who is shown on which channel."""

from datetime import date

from photoguard.engine.boxes import same_face
from photoguard.engine.identify import Identity
from photoguard.photos.inbox import is_candidate
from photoguard.rules.decide import OBSCURED, SHOWN, decide, questions_to_ask
from photoguard.rules.consent import ChildConsent

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

    for name in ("a.jpg.tmp", "a.part", "a.crdownload", "~$a.jpg", "._a.jpg", ".a.jpg.Xb3k9", ".DS_Store", "Thumbs.db",
                 "desktop.ini"):
        assert not is_candidate(Path(name)), name
    # A hidden name that ends like a photo is a photo (it used to wait in the inbox for ever).
    for name in ("IMG_0001.JPG", "photo.heic", "notes.txt", ".hidden.jpg", "..jpg"):
        assert is_candidate(Path(name)), name


# --- faces PhotoGuard asks the manager about --------------------------------------------------------------

def unsure(nearest, similarity, reason="no enrolled child close enough"):
    return Identity(None, similarity, None, reason, nearest)


def ask(identities, widths=None, ask_from=0.5, consents=CONSENTS, ask_standout=0.0):
    widths = widths or [120] * len(identities)
    return [(q.face, q.child_id) for q in questions_to_ask(identities, widths, consents, CHANNELS, TODAY,
                                                            ask_from=ask_from, min_face_px=80,
                                                            ask_standout=ask_standout)]


def test_an_unsure_face_like_a_consented_child_is_asked_about():
    assert ask([unsure("ada", 0.55)]) == [(0, "ada")]
    assert ask([unsure("grace", 0.50)]) == [(0, "grace")]   # Grace's consent shows her on one channel


def test_no_question_below_ask_from_too_small_or_nan():
    assert ask([unsure("ada", 0.49)]) == []
    assert ask([unsure("ada", 1.0)], ask_from=1.0) == []       # 1 means never, even for a perfect score
    assert ask([unsure("ada", 0.55)], widths=[79]) == []
    assert ask([unsure("ada", float("nan"))]) == []
    assert ask([unsure(None, None, "too small to identify")]) == []
    assert ask([unsure("ada", 0.55)], ask_from=1.0) == []    # asking switched off


def test_no_question_about_a_child_no_channel_would_show():
    consents = dict(CONSENTS, sam=ChildConsent("sam", "Sam", True, {"facebook": False, "instagram": False}))
    assert ask([unsure("old", 0.58)]) == []                  # consent ended yesterday
    assert ask([unsure("sam", 0.58)], consents=consents) == []
    assert ask([unsure("nobody", 0.58)]) == []               # not on the roster


def test_no_question_when_another_face_already_is_that_child():
    assert ask([ident("ada"), unsure("ada", 0.58, "another face in this photo is more like ada")]) == []
    assert ask([ident("ada"), unsure("grace", 0.58)]) == [(1, "grace")]


def test_a_look_alike_or_too_close_to_call_face_is_asked_about_its_nearest_child():
    assert ask([unsure("grace", 0.70, "too close to call between grace and ada")]) == [(0, "grace")]


def test_asking_never_shows_a_face():
    identities = [unsure("ada", 0.58)]
    assert ask(identities) == [(0, "ada")]
    d = decide(identities, CONSENTS, CHANNELS, TODAY)
    assert [a for a, _, _ in d["facebook"]] == [OBSCURED]
    assert [a for a, _, _ in d["instagram"]] == [OBSCURED]


def test_one_question_per_child_about_her_most_alike_face():
    assert ask([unsure("ada", 0.52), unsure("ada", 0.58), unsure("grace", 0.51)]) == [(1, "ada"), (2, "grace")]


def standing_out(nearest, similarity, standout):
    return Identity(None, similarity, None, "no enrolled child close enough", nearest, standout)


def test_a_face_as_alike_to_the_rest_of_the_roster_is_not_asked_about():
    assert ask([standing_out("ada", 0.55, 1.7)], ask_standout=2.5) == []
    assert ask([standing_out("ada", 0.55, float("nan"))], ask_standout=2.5) == []
    assert ask([standing_out("ada", 0.55, 2.5)], ask_standout=2.5) == [(0, "ada")]
    # Too few other children to compare with: asked as before (asking never shows anything).
    assert ask([standing_out("ada", 0.55, None)], ask_standout=2.5) == [(0, "ada")]
    # 0 switches the comparison off.
    assert ask([standing_out("ada", 0.55, 1.7)], ask_standout=0) == [(0, "ada")]
    # The most alike face that stands out is the one asked about.
    assert ask([standing_out("ada", 0.58, 1.0), standing_out("ada", 0.52, 4.0)], ask_standout=2.5) == [(1, "ada")]
