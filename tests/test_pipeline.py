"""Processing real composites of public-domain faces through the whole pipeline."""

from __future__ import annotations

import io
import json
import shutil
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from facekit import face_patch, jpeg_bytes, scene
from PIL import Image

from photoguard.engine.detect import FaceDetector
from photoguard.flow.pipeline import Processor
from photoguard.flow.recheck import recheck_outbox
from photoguard.flow.batch import run_batch
from photoguard.photos.inbox import collect
from photoguard.store.db import connect
from photoguard.store.home import open_home
from photoguard.store.roster import sync_roster

CSV_HEADER = "id,name,face_matching,facebook,instagram,twitter,expires\n"
ROSTER = CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\ngrace,Grace,yes,yes,no,no,\n"

# The test photo: Ada (astronaut) on the left, Grace (Hopper) on the right.
ADA_AT = (140, 180, 170)    # x, y, face width
GRACE_AT = (620, 200, 170)


def _fr():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition
    return face_recognition


def write_reference_photos(enrol: Path, child: str, face: str) -> None:
    folder = enrol / child
    folder.mkdir(parents=True, exist_ok=True)
    for i, (width, context, gain) in enumerate([(150, 0.8, 1.0), (190, 0.6, 1.1), (170, 1.0, 0.9)]):
        rgb = face_patch(face, width, context).rgb.astype(np.float32) * gain
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(folder / f"ref{i}.jpg", quality=92)


def photo_of_both(seed: int = 1) -> tuple[np.ndarray, dict[str, tuple[int, int, int, int]]]:
    rgb, boxes = scene(960, 640, [("astronaut", *ADA_AT), ("hopper", *GRACE_AT)], seed=seed)
    return rgb, {"ada": boxes[0], "grace": boxes[1]}


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def make_enrolled_home(root: Path) -> Path:
    """A home with Ada (astronaut) and Grace (Hopper) enrolled from three reference photos each."""
    home = open_home(root)
    write_reference_photos(home.enrol, "ada", "astronaut")
    write_reference_photos(home.enrol, "grace", "hopper")
    home.roster_csv.write_text(ROSTER, encoding="utf-8")
    conn = connect(home.database)
    sync_roster(home, conn)
    assert conn.execute("SELECT COUNT(*) FROM templates").fetchone()[0] >= 4
    conn.close()
    return root


@pytest.fixture(scope="module")
def enrolled_home(tmp_path_factory) -> Path:
    return make_enrolled_home(tmp_path_factory.mktemp("enrolled"))


@pytest.fixture
def home(enrolled_home, tmp_path):
    root = tmp_path / "home"
    shutil.copytree(enrolled_home, root)
    return open_home(root)


@pytest.fixture
def processor(home, detector) -> Processor:
    return Processor(home, detector=detector)


def region(path: Path, box) -> np.ndarray:
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    left, top, right, bottom = box
    return rgb[top:bottom, left:right].astype(np.int16)


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def drop(home, name: str, data: bytes) -> Path:
    path = home.inbox / name
    path.write_bytes(data)
    return path


def test_consented_child_shown_others_obscured_per_channel(home, processor):
    rgb, boxes = photo_of_both()
    src = drop(home, "party.jpg", jpeg_bytes(rgb, quality=95))
    result = processor.process(src)

    assert result.status == "cleared", result.reason
    assert set(result.outputs) == {"facebook", "instagram", "twitter"}
    by_child = {f.child: f for f in result.faces}
    assert set(by_child) >= {"ada", "grace"}
    assert by_child["ada"].actions == {"facebook": "shown", "instagram": "shown", "twitter": "shown"}
    assert by_child["grace"].actions == {"facebook": "shown", "instagram": "obscured", "twitter": "obscured"}
    assert by_child["grace"].action_reasons["instagram"] == "no consent for instagram"

    ada, grace = boxes["ada"], boxes["grace"]
    fb, ig = Path(result.outputs["facebook"]), Path(result.outputs["instagram"])
    assert fb.parent == home.outbox_for("facebook") and fb.name == "party.jpg"
    # Shown faces are the photo's own pixels, apart from JPEG re-encoding.
    assert diff(region(fb, ada), rgb[ada[1]:ada[3], ada[0]:ada[2]]) < 4
    assert diff(region(fb, grace), rgb[grace[1]:grace[3], grace[0]:grace[2]]) < 4
    assert diff(region(ig, ada), rgb[ada[1]:ada[3], ada[0]:ada[2]]) < 4
    # Grace is obscured on Instagram, and no longer recognisable as herself.
    assert diff(region(ig, grace), rgb[grace[1]:grace[3], grace[0]:grace[2]]) > 15
    fr = _fr()
    with Image.open(ig) as im:
        out = np.asarray(im.convert("RGB"))
    own = fr.face_encodings(rgb, [(grace[1], grace[2], grace[3], grace[0])])[0]
    found = fr.face_encodings(out, [(grace[1], grace[2], grace[3], grace[0])])
    assert not found or np.linalg.norm(found[0] - own) > 0.6

    # The original is archived, owner-only; the inbox is empty.
    assert not src.exists()
    conn = processor.conn
    row = conn.execute("SELECT * FROM photos WHERE sha256 = ?", (result.sha256,)).fetchone()
    archived = home.root / row["archive_path"]
    assert archived.read_bytes() == jpeg_bytes(rgb, quality=95)
    assert archived.stat().st_mode & 0o077 == 0
    # Audit: per face the child and distance, per channel the action and the consent used.
    actions = conn.execute("SELECT channel, action, fa.reason, consent FROM face_actions fa JOIN faces f "
                           "ON f.photo_sha256 = fa.photo_sha256 AND f.idx = fa.face_idx WHERE f.child_id = 'grace'").fetchall()
    assert {(a["channel"], a["action"]) for a in actions} == {("facebook", "shown"), ("instagram", "obscured"), ("twitter", "obscured")}
    assert json.loads(actions[0]["consent"])["child"] == "grace"


def test_unknown_face_obscured_everywhere(home, processor):
    home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\ngrace,Grace,no,yes,yes,yes,\n", encoding="utf-8")
    sync_roster(home, processor.conn)
    rgb, boxes = photo_of_both(seed=2)
    result = processor.process(drop(home, "unknown.jpg", jpeg_bytes(rgb)))
    grace = [f for f in result.faces if f.box[0] > 400]
    assert grace and all(f.child is None for f in grace)
    assert all(set(f.actions.values()) == {"obscured"} for f in grace)
    g = boxes["grace"]
    for channel in ("facebook", "instagram", "twitter"):
        assert diff(region(Path(result.outputs[channel]), g), rgb[g[1]:g[3], g[0]:g[2]]) > 15


def test_small_faces_are_obscured_not_identified(home, processor):
    rgb, boxes = scene(900, 600, [("astronaut", 100, 100, 40), ("hopper", 500, 300, 44)], seed=3)
    result = processor.process(drop(home, "far.jpg", jpeg_bytes(rgb)))
    assert result.status == "cleared"
    assert len(result.faces) >= 2
    assert all(f.child is None for f in result.faces)
    assert all(set(f.actions.values()) == {"obscured"} for f in result.faces)
    assert any("too small" in f.reason for f in result.faces)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation(home, processor, orientation):
    rgb, boxes = photo_of_both(seed=orientation)
    result = processor.process(drop(home, f"turned{orientation}.jpg", jpeg_bytes(rgb, orientation)))
    assert result.status == "cleared", result.reason
    with Image.open(result.outputs["instagram"]) as im:
        assert im.size == (rgb.shape[1], rgb.shape[0])  # upright, as the photo is meant to be seen
        assert im.getexif().get(0x0112) is None
    g, a = boxes["grace"], boxes["ada"]
    ig = Path(result.outputs["instagram"])
    assert diff(region(ig, g), rgb[g[1]:g[3], g[0]:g[2]]) > 15
    assert diff(region(ig, a), rgb[a[1]:a[3], a[0]:a[2]]) < 4


def test_heic_in_jpeg_out(home, processor):
    import pillow_heif

    rgb, boxes = photo_of_both(seed=9)
    heif = pillow_heif.from_bytes(mode="RGB", size=(rgb.shape[1], rgb.shape[0]), data=rgb.tobytes())
    buf = io.BytesIO()
    heif.save(buf, quality=95)
    result = processor.process(drop(home, "ipad.HEIC", buf.getvalue()))
    assert result.status == "cleared", result.reason
    out = Path(result.outputs["instagram"])
    assert out.name == "ipad.jpg"
    with Image.open(out) as im:
        assert im.format == "JPEG"
    g = boxes["grace"]
    assert diff(region(out, g), rgb[g[1]:g[3], g[0]:g[2]]) > 15


def jpeg_markers(data: bytes) -> list[int]:
    """Walk a JPEG's segments: the markers up to and including SOS, then EOI."""
    assert data[:2] == b"\xff\xd8"
    markers, i = [0xD8], 2
    while i < len(data):
        assert data[i] == 0xFF, f"bad marker at {i}"
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        markers.append(marker)
        if marker == 0xDA:  # SOS: entropy-coded data follows up to EOI
            break
        length = int.from_bytes(data[i + 2:i + 4], "big")
        i += 2 + length
    assert data.rstrip(b"\x00")[-2:] == b"\xff\xd9"
    return markers + [0xD9]


def test_outbox_carries_no_metadata(home, processor):
    rgb, _ = photo_of_both(seed=4)
    exif = Image.Exif()
    exif[0x010F] = "TabletMaker"
    exif[0x0110] = "NurseryTab 3"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)})
    thumb = io.BytesIO()
    Image.fromarray(rgb).resize((160, 106)).save(thumb, "JPEG")
    src = io.BytesIO()
    img = Image.fromarray(rgb)
    img.info["comment"] = b"Taken at Little Acorns nursery, room 2"
    img.save(src, "JPEG", exif=exif, comment=b"Taken at Little Acorns nursery, room 2")
    data = src.getvalue()
    # Splice an EXIF thumbnail-bearing APP1 and an XMP APP1 in after SOI, as cameras do.
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><rdf:Description GPSLatitude='51,30N'/></x:xmpmeta>"
    app1_xmp = b"\xff\xe1" + (len(xmp) + 2).to_bytes(2, "big") + xmp
    iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0c\x1c\x02\x05\x00\x07Nursery"
    app13 = b"\xff\xed" + (len(iptc) + 2).to_bytes(2, "big") + iptc
    data = data[:2] + app1_xmp + app13 + data[2:]
    assert b"Little Acorns" in data and b"xmpmeta" in data

    result = processor.process(drop(home, "meta.jpg", data))
    assert result.status == "cleared"
    for path in result.outputs.values():
        out = Path(path).read_bytes()
        markers = jpeg_markers(out)
        allowed = {0xD8, 0xE0, 0xE2, 0xDB, 0xC0, 0xC1, 0xC2, 0xC4, 0xDD, 0xDA, 0xD9}
        assert set(markers) <= allowed, [hex(m) for m in markers]
        for needle in (b"Little Acorns", b"xmpmeta", b"TabletMaker", b"NurseryTab", b"Exif", b"8BIM"):
            assert needle not in out


def test_batch_routes_bad_inputs_and_goes_on(home, processor):
    from badinputs import make_bad_inputs

    expected = make_bad_inputs(home.inbox)
    rgb, _ = photo_of_both(seed=5)
    drop(home, "good.jpg", jpeg_bytes(rgb))
    files = collect([home.inbox])
    results = {r.source: r for r in run_batch(processor, files, workers=1)}

    assert results["good.jpg"].status == "cleared"
    bad = {name: why for name, why in expected.items() if why is not None}
    assert len(bad) >= 20
    for name, why in expected.items():
        if not (home.inbox / name).parent.exists():
            continue
        r = results.get(Path(name).name)
        assert r is not None, name
        if why is None:
            assert r.status in ("cleared", "review"), (name, r.reason)
        else:
            assert r.status == "failed", (name, r.status)
            note = (home.failed / (Path(name).name + ".txt")).read_text()
            assert why.lower() in note.lower(), (name, note)
            assert (home.failed / Path(name).name).exists()
    assert not any(p.is_file() for p in home.inbox.rglob("*"))


def test_same_photo_twice_is_processed_once(home, processor):
    rgb, _ = photo_of_both(seed=6)
    data = jpeg_bytes(rgb)
    first = processor.process(drop(home, "a.jpg", data))
    second = processor.process(drop(home, "copy-of-a.jpg", data))
    assert first.status == "cleared"
    assert second.status == "duplicate"
    assert len(list(home.outbox_for("facebook").iterdir())) == 1
    dup = home.archive / "duplicates" / "copy-of-a.jpg"
    assert dup.read_bytes() == data
    assert "same content as a.jpg" in dup.with_name("copy-of-a.jpg.txt").read_text()


def test_names_never_overwrite(home, processor):
    for seed in (7, 8):
        rgb, _ = photo_of_both(seed=seed)
        (home.inbox / "sub").mkdir(exist_ok=True)
        drop(home, "sub/IMG_0001.jpg" if seed == 7 else "IMG_0001.jpg", jpeg_bytes(rgb))
    run_batch(processor, collect([home.inbox]))
    # The drop's folders are kept (tests/test_outbox_folders.py): two photos of one name stay apart.
    names = sorted(p.relative_to(home.outbox_for("twitter")).as_posix()
                   for p in home.outbox_for("twitter").rglob("*") if p.is_file())
    assert names == ["IMG_0001.jpg", "sub/IMG_0001.jpg"]
    for seed in (9, 10):   # the same name dropped again later into the same folder
        rgb, _ = photo_of_both(seed=seed)
        drop(home, "sub/IMG_0001.jpg" if seed == 9 else "IMG_0001.jpg", jpeg_bytes(rgb))
    run_batch(processor, collect([home.inbox]))
    names = sorted(p.relative_to(home.outbox_for("twitter")).as_posix()
                   for p in home.outbox_for("twitter").rglob("*") if p.is_file())
    assert names == ["IMG_0001-1.jpg", "IMG_0001.jpg", "sub/IMG_0001-1.jpg", "sub/IMG_0001.jpg"]


class FirstLookMisses(FaceDetector):
    """A real detector that misses the faces in the right half of each photo on its first look (only the
    right-most face with ``only_rightmost``).

    The real second look searches only around the obscured areas (elsewhere the picture is the photo the first
    look searched, where a real first look cannot have missed a clear face); this stand-in's first look can, so
    by default its second look searches the whole picture, and a photo with a missed face is held wherever
    the face is. ``whole_second_look=False`` keeps the real, restricted one."""

    def __init__(self, *, only_rightmost: bool = False, whole_second_look: bool = True) -> None:
        super().__init__()
        self.looks = 0
        self.only_rightmost = only_rightmost
        self.whole_second_look = whole_second_look

    def detect(self, rgb, main_copy=None):
        faces = super().detect(rgb, main_copy)
        self.looks += 1
        if self.looks == 1 and faces:
            if self.only_rightmost:
                rightmost = max(faces, key=lambda f: f.left)
                return [f for f in faces if f is not rightmost]
            return [f for f in faces if f.left < rgb.shape[1] // 2]
        return faces

    def detect_confident(self, rgb, threshold, changed=None, like=None):
        return super().detect_confident(rgb, threshold, None if self.whole_second_look else changed, like)


def test_face_found_only_on_second_look_goes_to_review(home):
    from photoguard.flow.review import review_queue
    from photoguard.flow.release import release

    processor = Processor(home, detector=FirstLookMisses(only_rightmost=True, whole_second_look=False))
    # The face the first look misses is beside Grace, who is obscured on Instagram and Twitter: the second
    # look searches around what was obscured (elsewhere the picture is the photo the first look searched).
    rgb, _ = scene(960, 640, [("astronaut", *ADA_AT), ("hopper", 520, 200, 170), ("astronaut", 705, 240, 100)],
                   seed=10)
    result = processor.process(drop(home, "missed.jpg", jpeg_bytes(rgb)))
    assert result.status == "review"
    assert result.reason.startswith("a face the first look missed, middle right")
    assert "[" not in result.reason  # in words, not pixel lists
    assert not any(list(home.outbox_for(c).iterdir()) for c in home.settings.channels)
    # The face joins the photo's faces as unknown, obscured on every channel.
    late = [f for f in result.faces if f.reason == "found on the second look"]
    assert len(late) == 1 and late[0].child is None
    assert set(late[0].actions.values()) == {"obscured"}
    items = review_queue(home, processor.conn)
    assert [i.name for i in items] == ["missed"] and items[0].reason == result.reason
    assert json.loads((home.review / "missed.json").read_text())["reason"] == result.reason
    # The manager looks and releases it to Facebook only.
    placed = release(home, processor.conn, "missed", ["facebook"], actor="tester").files
    assert placed["facebook"].exists() and review_queue(home, processor.conn) == []
    event = processor.conn.execute("SELECT * FROM events WHERE kind = 'released'").fetchone()
    assert "facebook" in event["detail"] and event["actor"] == "tester"


def test_withdrawn_consent_rerenders_outbox(home, processor):
    from photoguard.flow.batch import open_processor

    rgb, boxes = photo_of_both(seed=11)
    result = processor.process(drop(home, "picnic.jpg", jpeg_bytes(rgb)))
    fb = Path(result.outputs["facebook"])
    g = boxes["grace"]
    assert diff(region(fb, g), rgb[g[1]:g[3], g[0]:g[2]]) < 4

    # Grace's parents withdraw consent for Facebook.
    home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\ngrace,Grace,yes,no,no,no,\n", encoding="utf-8")
    messages: list[str] = []
    fresh = open_processor(home, messages.append)

    assert fb.exists()
    assert diff(region(fb, g), rgb[g[1]:g[3], g[0]:g[2]]) > 15        # Grace now obscured
    a = boxes["ada"]
    assert diff(region(fb, a), rgb[a[1]:a[3], a[0]:a[2]]) < 4         # Ada untouched
    assert any("facebook/picnic.jpg: rerendered" in m for m in messages)
    events = fresh.conn.execute("SELECT * FROM events WHERE kind = 'rerendered'").fetchall()
    assert len(events) == 1 and "facebook" in events[0]["detail"]
    # History is appended: the decision at processing stays as it was; the re-made file is a new row.
    grace = fresh.conn.execute("SELECT idx FROM faces WHERE child_id = 'grace'").fetchone()["idx"]
    action = fresh.conn.execute("SELECT action FROM face_actions WHERE channel = 'facebook' AND face_idx = ?",
                                (grace,)).fetchone()
    assert action["action"] == "shown"
    files = fresh.conn.execute("SELECT * FROM outbox_files WHERE channel = 'facebook' ORDER BY id").fetchall()
    assert [f["ended"] for f in files] == ["replaced", None] and files[1]["replaces"] == files[0]["id"]
    assert grace in json.loads(files[0]["shown"]) and grace not in json.loads(files[1]["shown"])
    assert "grace: no consent for facebook" in files[1]["made"]
    # Nothing left to do the second time.
    assert recheck_outbox(fresh) == []


def test_expired_consent_caught_next_day(home, processor):
    home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,yes,yes,yes,2026-11-30\ngrace,Grace,yes,yes,no,no,\n", encoding="utf-8")
    sync_roster(home, processor.conn, today=date(2026, 11, 30))
    processor.reload_roster()
    rgb, boxes = photo_of_both(seed=12)
    result = processor.process(drop(home, "last-day.jpg", jpeg_bytes(rgb)), today=date(2026, 11, 30))
    ada = [f for f in result.faces if f.child == "ada"]
    assert ada and ada[0].actions["twitter"] == "shown"  # the expiry day itself is still valid
    changes = recheck_outbox(processor, today=date(2026, 12, 1))
    assert {c.channel for c in changes} == {"facebook", "instagram", "twitter"}
    assert all(c.action == "rerendered" for c in changes), changes
    a = boxes["ada"]
    tw = Path(result.outputs["twitter"])
    assert diff(region(tw, a), rgb[a[1]:a[3], a[0]:a[2]]) > 15


def test_collected_photo_is_noted_not_recreated(home, processor):
    rgb, _ = photo_of_both(seed=13)
    result = processor.process(drop(home, "collected.jpg", jpeg_bytes(rgb)))
    Path(result.outputs["facebook"]).unlink()  # the manager collected it
    home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\ngrace,Grace,no,no,no,no,\n", encoding="utf-8")
    sync_roster(home, processor.conn)
    processor.reload_roster()
    changes = {c.channel: c for c in recheck_outbox(processor)}
    assert "facebook" not in changes      # collected: nothing in the outbox to re-make ...
    assert not Path(result.outputs["facebook"]).exists()
    from photoguard.flow.outbox import takedown_list

    # ... and it is out in the world showing Grace: on the take-down list.
    assert [(i.channel, i.how, [c.child_id for c in i.children]) for i in takedown_list(processor.conn)] == \
        [("facebook", "collected", ["grace"])]


def test_process_command_json_lines_and_second_run_does_nothing(enrolled_home, tmp_path):
    from click.testing import CliRunner

    from photoguard.cli import main

    root = tmp_path / "cli-home"
    shutil.copytree(enrolled_home, root)
    rgb, _ = photo_of_both(seed=15)
    (root / "inbox" / "one.jpg").write_bytes(jpeg_bytes(rgb))
    (root / "inbox" / "junk.jpg").write_bytes(b"<html>not a photo</html>")
    runner = CliRunner()
    out = runner.invoke(main, ["process", "--json", "--workers", "1", "--home", str(root)])
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    by_source = {line["source"]: line for line in lines}
    assert by_source["junk.jpg"]["status"] == "failed" and "not an image" in by_source["junk.jpg"]["reason"]
    one = by_source["one.jpg"]
    assert one["status"] == "cleared" and set(one["outputs"]) == {"facebook", "instagram", "twitter"}
    assert {f["child"] for f in one["faces"]} >= {"ada", "grace"}
    grace = next(f for f in one["faces"] if f["child"] == "grace")
    assert grace["actions"] == {"facebook": "shown", "instagram": "obscured", "twitter": "obscured"}
    assert isinstance(grace["box"], list) and grace["distance"] < 0.45 and one["seconds"] > 0

    again = runner.invoke(main, ["process", "--home", str(root)])
    assert again.exit_code == 0 and "nothing to process" in again.output


def test_unreadable_roster_stops_processing_and_keeps_photos(enrolled_home, tmp_path):
    from click.testing import CliRunner

    from photoguard.cli import main

    root = tmp_path / "broken-roster"
    shutil.copytree(enrolled_home, root)
    (root / "enrol" / "children.csv").write_text("name,facebook\nAda,yes\n")  # no id column
    rgb, _ = photo_of_both(seed=16)
    (root / "inbox" / "wait.jpg").write_bytes(jpeg_bytes(rgb))
    out = CliRunner().invoke(main, ["process", "--home", str(root)])
    assert out.exit_code == 1
    assert "children.csv" in out.output and "Traceback" not in out.output
    assert (root / "inbox" / "wait.jpg").exists()
    assert not any((root / "outbox").rglob("*.jpg"))


def test_deleted_roster_with_children_on_file_stops_processing(enrolled_home, tmp_path):
    from photoguard.flow.batch import open_processor
    from photoguard.store.roster_csv import RosterError

    root = tmp_path / "no-roster"
    shutil.copytree(enrolled_home, root)
    (root / "enrol" / "children.csv").unlink()
    with pytest.raises(RosterError, match="children.csv"):
        open_processor(open_home(root), lambda _: None)


def test_an_entry_that_cannot_be_finished_goes_to_failed_even_once_archived(home, processor):
    """Resume gave up on a photo whose snapshot had already been archived: the original goes to failed/
    with a note in words, never left only in the archive."""
    result = processor.process(drop(home, "swings.jpg", jpeg_bytes(photo_of_both(seed=5)[0])))
    sha = result.sha256
    row = processor.conn.execute("SELECT archive_path, plan FROM photos WHERE sha256 = ?", (sha,)).fetchone()
    archived = home.root / row["archive_path"]
    assert archived.exists()
    with processor.conn:
        processor.conn.execute("UPDATE photos SET state = 'publishing' WHERE sha256 = ?", (sha,))
    done = processor.abandon(sha, "OSError: [Errno 5] Input/output error")
    assert done.status == "failed" and not archived.exists()
    assert sorted(p.name for p in home.failed.iterdir()) == ["swings.jpg", "swings.jpg.txt"]
    note = (home.failed / "swings.jpg.txt").read_text()
    assert "could not finish it after an interruption" in note and "Errno" not in note
    assert processor.conn.execute("SELECT archive_path FROM photos WHERE sha256 = ?", (sha,)).fetchone()[0] is None


def test_the_next_photo_is_decoded_while_this_one_is_processed(home, processor, monkeypatch):
    """photoguard process (one worker): each photo but the first was decoded ahead, in a thread, while the
    one before it was processed; the pipeline decodes none of them again, and each is decided as usual."""
    from photoguard.flow import pipeline

    names = []
    for i in range(3):
        rgb, _ = photo_of_both(seed=10 + i)
        names.append(drop(home, f"party{i}.jpg", jpeg_bytes(rgb, quality=92)).name)
    decoded_in_turn = []
    real = pipeline.load_image
    monkeypatch.setattr(pipeline, "load_image", lambda path: decoded_in_turn.append(path) or real(path))

    results = {r.source: r for r in run_batch(processor, collect([home.inbox]), workers=1)}

    assert sorted(results) == names
    assert all(r.status == "cleared" for r in results.values()), [r.reason for r in results.values()]
    assert {f.child for r in results.values() for f in r.faces} >= {"ada", "grace"}
    assert len(decoded_in_turn) == 1


def test_a_photo_decoded_ahead_is_not_used_for_other_bytes(home, processor):
    """The file was replaced after it was decoded ahead: the snapshot's bytes (the new photo) are decided."""
    from photoguard.flow.batch import ReadAhead

    path = drop(home, "swap.jpg", jpeg_bytes(photo_of_both(seed=20)[0], quality=92))
    ahead = ReadAhead()
    ahead.start(str(path))
    loaded = ahead.take(str(path))
    assert loaded is not None and loaded.rgb.shape == (640, 960, 3)
    smaller = np.ascontiguousarray(photo_of_both(seed=21)[0][:600, :900])
    path.write_bytes(jpeg_bytes(smaller, quality=92))

    result = processor.process(path, loaded=loaded)

    assert result.status == "cleared", result.reason
    row = processor.conn.execute("SELECT width, height FROM photos WHERE sha256 = ?", (result.sha256,)).fetchone()
    assert (row["width"], row["height"]) == (900, 600)


def test_a_very_large_photo_is_not_decoded_ahead(home, monkeypatch):
    """Two very large photos' pixels at once in one worker cost more memory than reading ahead saves."""
    from photoguard.flow import batch

    path = drop(home, "wide.jpg", jpeg_bytes(photo_of_both(seed=22)[0], quality=92))
    ahead = batch.ReadAhead()
    ahead.start(str(path))
    assert ahead.take(str(path)) is not None
    monkeypatch.setattr(batch, "READ_AHEAD_MAX_PIXELS", 960 * 640 - 1)
    ahead.start(str(path))
    assert ahead.take(str(path)) is None
    ahead.close()
