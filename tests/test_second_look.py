"""The second look's "still recognisable" test runs on SFace: a face left recognisable is caught."""

from __future__ import annotations

import numpy as np
import pytest
from facekit import face_patch, scene

from photoguard.engine.detect import FaceDetector
from photoguard.flow.pipeline import Processor
from photoguard.store.db import connect
from photoguard.store.home import open_home
from photoguard.store.roster import sync_roster

ROSTER = "id,name,face_matching,facebook,instagram,twitter,expires\nada,Ada,yes,yes,yes,yes,\n"


@pytest.fixture(scope="module")
def processor(tmp_path_factory) -> Processor:
    from PIL import Image

    home = open_home(tmp_path_factory.mktemp("home"))
    folder = home.enrol / "ada"
    folder.mkdir(parents=True)
    for i, (width, context) in enumerate([(150, 0.8), (190, 0.6), (170, 1.0)]):
        Image.fromarray(face_patch("astronaut", width, context).rgb).save(folder / f"ref{i}.jpg", quality=92)
    home.roster_csv.write_text(ROSTER, encoding="utf-8")
    conn = connect(home.database)
    sync_roster(home, conn)
    return Processor(home, conn=conn, detector=FaceDetector())


def test_face_left_recognisable_is_caught_and_an_obscured_one_passes(processor):
    rgb, _ = scene(900, 600, [("astronaut", 300, 200, 170)], seed=2)
    faces = processor.detector.detect(rgb)
    assert len(processor.templates) == 3
    shown = [False] * len(faces)            # nobody shown: every face must come out obscured
    why = processor.verify(rgb, faces, shown, rgb)   # ... but the picture was not obscured at all
    assert why is not None and "can still be recognised as ada" in why
    rendered = processor.render(rgb, faces, shown, seed=1)
    assert processor.verify(rendered, faces, shown, rgb) is None
    assert not np.array_equal(rendered, rgb)
