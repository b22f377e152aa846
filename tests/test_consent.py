from datetime import date, datetime

from photoguard.rules.consent import ChildConsent, may_show

TODAY = date(2026, 5, 10)


def child(**kw) -> ChildConsent:
    base = dict(child_id="amy", name="Amy", face_matching=True,
                channels={"facebook": True, "instagram": False, "twitter": True},
                expires=date(2026, 9, 1))
    base.update(kw)
    return ChildConsent(**base)


def test_valid_consent_for_channel():
    d = may_show(child(), "facebook", TODAY)
    assert d.allowed and d.reason == "consent for facebook"


def test_expiry_day_itself_is_valid():
    assert may_show(child(), "facebook", date(2026, 9, 1)).allowed


def test_day_after_expiry_is_expired():
    d = may_show(child(), "facebook", date(2026, 9, 2))
    assert not d.allowed and d.reason == "consent expired 2026-09-01"


def test_no_expiry_means_valid_forever():
    assert may_show(child(expires=None), "twitter", date(2099, 1, 1)).allowed


def test_withdrawn_channel():
    d = may_show(child(), "instagram", TODAY)
    assert not d.allowed and d.reason == "no consent for instagram"


def test_unknown_channel():
    d = may_show(child(), "tiktok", TODAY)
    assert not d.allowed and d.reason.startswith("no consent for tiktok")


def test_no_face_matching_is_never_shown():
    d = may_show(child(face_matching=False), "facebook", TODAY)
    assert not d.allowed and "face matching" in d.reason


def test_not_on_roster():
    d = may_show(None, "facebook", TODAY)
    assert not d.allowed and d.reason == "not on the roster"


def test_row_with_problem_is_never_shown():
    d = may_show(child(problem="bad date in 'expires'"), "facebook", TODAY)
    assert not d.allowed and "bad date" in d.reason


def test_unclear_values_are_not_consent():
    # Only a real True counts: a stray string or None from a bad caller is no consent.
    assert not may_show(child(channels={"facebook": "yes"}), "facebook", TODAY).allowed
    assert not may_show(child(channels={"facebook": None}), "facebook", TODAY).allowed
    assert not may_show(child(face_matching=1), "facebook", TODAY).allowed
    assert not may_show(child(expires="2026-09-01"), "facebook", TODAY).allowed


def test_datetime_is_treated_as_its_day():
    assert may_show(child(), "facebook", datetime(2026, 9, 1, 23, 59)).allowed
    assert not may_show(child(), "facebook", datetime(2026, 9, 2, 0, 1)).allowed
