"""One processor per home: a refused command says who is busy with the home, in words."""

from __future__ import annotations

import os

import pytest

from photoguard.store.home import open_home
from photoguard.store.lock import HomeBusy, hold_lock, lock_holder


def test_a_refused_command_names_what_holds_the_home_and_never_says_kill(tmp_path):
    home = open_home(tmp_path / "home")
    assert lock_holder(home) is None
    with hold_lock(home, "the manager's pages, checking photos again"):
        assert lock_holder(home) == os.getpid()
        with pytest.raises(HomeBusy) as refused:
            with hold_lock(home, "photoguard watch"):
                pass
    words = str(refused.value)
    assert words.startswith("the manager's pages, checking photos again (pid ")
    assert "before running photoguard watch" in words and "kill" not in words
    assert lock_holder(home) is None
    with hold_lock(home, "photoguard watch"):   # free again once the holder is done
        pass
