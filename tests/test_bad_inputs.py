"""Every kind of bad or awkward file staff might drop: refused with a reason a person understands, or loaded."""

import numpy as np
import pytest
from badinputs import make_bad_inputs

from photoguard.photos.images import ImageError, load_image


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    from photoguard.engine.identify import face_recognition

    face_recognition()   # as in the pipeline: its import loosens Pillow (LOAD_TRUNCATED_IMAGES)
    folder = tmp_path_factory.mktemp("bad")
    return folder, make_bad_inputs(folder)


def test_there_are_many_kinds(bad_inputs):
    _, expected = bad_inputs
    assert sum(why is not None for why in expected.values()) >= 20
    assert sum(why is None for why in expected.values()) >= 10


def test_each_file_is_refused_with_its_reason_or_loads(bad_inputs):
    folder, expected = bad_inputs
    wrong = []
    for name, why in expected.items():
        try:
            loaded = load_image(folder / name)
        except ImageError as exc:
            message = str(exc)
            if why is None:
                wrong.append(f"{name}: should load, got {message!r}")
            elif why.lower() not in message.lower():
                wrong.append(f"{name}: expected {why!r} in {message!r}")
            elif not message.startswith(name + ": ") or exc.reason not in message:
                wrong.append(f"{name}: message should name the file: {message!r}")
            elif any(junk in message for junk in ("BytesIO", "Traceback", "<_io", "0x7f")):
                wrong.append(f"{name}: message shows program internals: {message!r}")
            continue
        if why is not None:
            wrong.append(f"{name}: should be refused ({why!r}) but loaded as {loaded.format}")
            continue
        rgb = loaded.rgb
        if not (rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.flags.c_contiguous and rgb.flags.writeable):
            wrong.append(f"{name}: loaded as {rgb.dtype} {rgb.shape}")
    assert not wrong, "\n".join(wrong)


def test_folder_named_like_a_photo(tmp_path):
    (tmp_path / "x.jpg").mkdir()
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path / "x.jpg")


def test_missing_file_is_not_a_bad_photo(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "gone.jpg")
