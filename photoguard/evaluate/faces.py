"""Measure the face engine on labelled photos: detection recall and identification leaks.

Recall is measured, not assumed. ``evaluate_detection`` reads dlib imglab XML boxes;
``evaluate_identity`` enrols some photos of each person in a folder and checks who the others
come out as. A *wrong keep* (a face shown as someone it is not) is a leak and must be zero.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from photoguard.engine.boxes import Box, covers
from photoguard.engine.detect import FaceBox, FaceDetector
from photoguard.engine.identify import Template, encode_faces, match_faces
from photoguard.photos.images import PHOTO_SUFFIXES

# Face-width buckets (pixels, left edge inclusive) used in every report.
SIZE_BUCKETS: tuple[tuple[int, int], ...] = ((0, 24), (24, 32), (32, 64), (64, 128), (128, 420), (420, 1000), (1000, 10**6))


class EvaluationError(Exception):
    """The labelled data cannot be read; the message names the file."""


def bucket_name(width: int) -> str:
    for low, high in SIZE_BUCKETS:
        if low <= width < high:
            return f"{low}-{high}" if high < 10**6 else f"{low}+"
    return "?"


def load_rgb(path: Path) -> np.ndarray:
    """An oriented RGB array, read exactly as the pipeline reads photos."""
    from photoguard.photos.images import load_image

    return load_image(Path(path)).rgb


@dataclass
class ImageResult:
    path: str
    truth: int
    found: int
    missed: list[Box]
    false_boxes: list[Box]
    widths_found: list[tuple[int, bool]]  # (true face width, found?)


@dataclass
class DetectionReport:
    images: list[ImageResult] = field(default_factory=list)
    extra: list[ImageResult] = field(default_factory=list)   # photos with no faces at all

    @property
    def faces(self) -> int:
        return sum(r.truth for r in self.images)

    @property
    def found(self) -> int:
        return sum(r.found for r in self.images)

    @property
    def recall(self) -> float:
        return self.found / self.faces if self.faces else 1.0

    @property
    def boxes(self) -> int:
        return sum(r.found + len(r.false_boxes) for r in self.images)

    @property
    def false_boxes(self) -> int:
        return sum(len(r.false_boxes) for r in self.images)

    @property
    def precision(self) -> float:
        return 1 - self.false_boxes / self.boxes if self.boxes else 1.0

    def by_size(self) -> dict[str, tuple[int, int]]:
        """bucket -> (found, faces)."""
        out: dict[str, list[int]] = {}
        for low, high in SIZE_BUCKETS:
            out[bucket_name(low)] = [0, 0]
        for r in self.images:
            for width, hit in r.widths_found:
                cell = out[bucket_name(width)]
                cell[0] += hit
                cell[1] += 1
        return {k: (v[0], v[1]) for k, v in out.items() if v[1]}

    def to_dict(self) -> dict:
        return {
            "faces": self.faces, "found": self.found, "recall": self.recall,
            "boxes": self.boxes, "false_boxes": self.false_boxes, "precision": self.precision,
            "false_boxes_per_image": self.false_boxes / len(self.images) if self.images else 0.0,
            "by_size": {k: {"found": f, "faces": n} for k, (f, n) in self.by_size().items()},
            "images": [asdict(r) for r in self.images],
            "extra": [asdict(r) for r in self.extra],
        }


def score_image(path: str, truth: Sequence[Box], found: Sequence[Box]) -> ImageResult:
    hits = [any(covers(f, t) for f in found) for t in truth]
    false = [f for f in found if not any(covers(f, t) for t in truth)]
    return ImageResult(
        path=path, truth=len(truth), found=sum(hits),
        missed=[tuple(t) for t, h in zip(truth, hits) if not h],
        false_boxes=[tuple(f) for f in false],
        widths_found=[(t[2] - t[0], h) for t, h in zip(truth, hits)],
    )


def read_imglab(xml_path: Path) -> list[tuple[Path, list[Box]]]:
    """(photo path, face boxes) from a dlib imglab XML file; paths are relative to the XML file."""
    xml_path = Path(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise EvaluationError(f"{xml_path}: cannot read the box file ({exc}).")
    out = []
    for image in root.iter("image"):
        name = image.get("file")
        if not name:
            raise EvaluationError(f"{xml_path}: an <image> has no file='' attribute.")
        boxes = []
        for box in image.iter("box"):
            if box.get("ignore") == "1":
                continue
            try:
                left, top = int(box.get("left")), int(box.get("top"))
                width, height = int(box.get("width")), int(box.get("height"))
            except (TypeError, ValueError):
                raise EvaluationError(f"{xml_path}: a box of {name} lacks top/left/width/height numbers.")
            boxes.append((left, top, left + width, top + height))
        out.append(((xml_path.parent / name), boxes))
    return out


def evaluate_detection(
    detector: FaceDetector,
    labelled: Sequence[tuple[Path, Sequence[Box]]],
    extra: Sequence[Path] = (),
    progress: Callable[[str], None] | None = None,
) -> DetectionReport:
    """Run the detector on labelled photos (and on ``extra`` photos known to have no faces)."""
    report = DetectionReport()
    for path, truth in labelled:
        if progress:
            progress(str(path))
        found = [f.box for f in detector.detect(load_rgb(path))]
        report.images.append(score_image(str(path), truth, found))
    for path in extra:
        if progress:
            progress(str(path))
        found = [f.box for f in detector.detect(load_rgb(path))]
        report.extra.append(score_image(str(path), [], found))
    return report


# --- identity -------------------------------------------------------------------------------


@dataclass
class FaceOutcome:
    person: str            # the true person
    photo: str
    enrolled: bool         # was this person enrolled?
    width: int
    shown_as: str | None   # the identity the engine gave (None = unknown, obscured)
    reason: str
    similarity: float | None

    @property
    def kind(self) -> str:
        if self.shown_as is None:
            return "unknown"
        return "correct" if self.shown_as == self.person else "wrong"


@dataclass
class IdentityReport:
    enrolled: dict[str, list[str]]       # person -> enrolment photos
    held_out: list[str]
    faces: list[FaceOutcome] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (photo, why)
    min_face_px: int = 80

    def counts(self, faces: Sequence[FaceOutcome] | None = None) -> dict[str, int]:
        faces = self.faces if faces is None else faces
        out = {"faces": len(faces), "correct": 0, "wrong": 0, "unknown": 0}
        for f in faces:
            out[f.kind] += 1
        return out

    @property
    def wrong_keeps(self) -> int:
        return self.counts()["wrong"]

    def identifiable(self) -> list[FaceOutcome]:
        """Faces of enrolled people at least min_face_px wide: the ones that should be kept."""
        return [f for f in self.faces if f.enrolled and f.width >= self.min_face_px]

    def to_dict(self) -> dict:
        ident = self.counts(self.identifiable())
        return {
            "enrolled": self.enrolled, "held_out": self.held_out,
            "all": self.counts(),
            "enrolled_faces_min_width": ident,
            "correct_rate_min_width": ident["correct"] / ident["faces"] if ident["faces"] else None,
            "held_out_faces": self.counts([f for f in self.faces if not f.enrolled]),
            "faces": [asdict(f) | {"kind": f.kind} for f in self.faces],
            "skipped": self.skipped,
        }


def person_photos(folder: Path) -> dict[str, list[Path]]:
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationError(f"{folder} is not a folder of <person>/ photo folders.")
    people = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        photos = sorted(p for p in sub.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        if photos:
            people[sub.name] = photos
    if not people:
        raise EvaluationError(f"{folder} has no <person>/ folders with photos.")
    return people


@dataclass
class EncodedPhoto:
    person: str
    path: Path
    faces: list[FaceBox]
    encodings: list[np.ndarray | None]

    @property
    def main(self) -> int | None:
        """Index of the largest face: the person of the folder."""
        if not self.faces:
            return None
        return max(range(len(self.faces)), key=lambda i: self.faces[i].width * self.faces[i].height)


def encode_folder(detector: FaceDetector, folder: Path,
                  progress: Callable[[str], None] | None = None, encoder=None) -> list[EncodedPhoto]:
    """Detect and encode every face of every photo under ``folder/<person>/`` (once, for many rules)."""
    out = []
    for person, photos in person_photos(folder).items():
        for path in photos:
            if progress:
                progress(str(path))
            rgb = load_rgb(path)
            faces = detector.detect(rgb)
            out.append(EncodedPhoto(person, path, faces, encode_faces(rgb, faces, encoder=encoder)))
    return out


def identity_report(
    photos: Sequence[EncodedPhoto],
    *,
    k: int = 1,
    holdout: Sequence[str] = (),
    threshold: float,
    margin: float,
    min_face_px: int,
    use_look_alikes: bool = True,
) -> IdentityReport:
    """Enrol the first ``k`` photos of each person (except ``holdout``), identify every other face.

    Enrolment uses the largest face of a photo. In test photos the largest face is the folder's
    person; any other face found is a stranger, which must come out unknown.
    """
    from photoguard.engine.identify import look_alike_pairs

    people = sorted({p.person for p in photos})
    missing = set(holdout) - set(people)
    if missing:
        raise EvaluationError(f"holdout names people who are not in the folder: {', '.join(sorted(missing))}.")
    templates: list[Template] = []
    enrolled: dict[str, list[str]] = {}
    report = IdentityReport(enrolled, sorted(holdout), min_face_px=min_face_px)
    tests: list[tuple[EncodedPhoto, bool]] = []
    seen: dict[str, int] = {}
    for photo in photos:
        if photo.person in holdout:
            tests.append((photo, False))
            continue
        seen[photo.person] = seen.get(photo.person, 0) + 1
        if seen[photo.person] > k:
            tests.append((photo, True))
            continue
        i = photo.main
        if i is None or photo.encodings[i] is None:
            report.skipped.append((str(photo.path), "no face to enrol"))
            continue
        templates.append(Template(photo.person, photo.encodings[i]))
        enrolled.setdefault(photo.person, []).append(photo.path.name)
    pairs = look_alike_pairs(templates, threshold) if use_look_alikes else set()
    for photo, is_enrolled in tests:
        if not photo.faces:
            report.skipped.append((str(photo.path), "no face found"))
            continue
        ids = match_faces(photo.encodings, [b.width for b in photo.faces], templates, threshold=threshold,
                          margin=margin, min_face_px=min_face_px, confusable=pairs)
        for i, (box, ident) in enumerate(zip(photo.faces, ids)):
            main = i == photo.main
            report.faces.append(FaceOutcome(
                person=photo.person if main else "(stranger)", photo=str(photo.path),
                enrolled=is_enrolled and main and photo.person in enrolled, width=box.width,
                shown_as=ident.child_id, reason=ident.reason, similarity=ident.similarity,
            ))
    return report


def merge_reports(reports: Sequence[IdentityReport]) -> IdentityReport:
    """Many runs (e.g. each person held out in turn) as one report."""
    out = IdentityReport({}, [], min_face_px=reports[0].min_face_px if reports else 80)
    for r in reports:
        for person, names in r.enrolled.items():
            out.enrolled.setdefault(person, names)
        out.held_out += [h for h in r.held_out if h not in out.held_out]
        out.faces += r.faces
        out.skipped += r.skipped
    return out


def evaluate_identity(
    detector: FaceDetector,
    folder: Path,
    *,
    k: int = 1,
    holdout: Sequence[str] = (),
    each_held_out: bool = False,
    threshold: float,
    margin: float,
    min_face_px: int,
    progress: Callable[[str], None] | None = None,
) -> IdentityReport:
    """``identity_report`` on a folder; with ``each_held_out`` also once per person held out."""
    photos = encode_folder(detector, folder, progress)
    rule = dict(k=k, threshold=threshold, margin=margin, min_face_px=min_face_px)
    report = identity_report(photos, holdout=holdout, **rule)
    if not each_held_out:
        return report
    people = sorted({p.person for p in photos})
    return merge_reports([report] + [identity_report(photos, holdout=[p], **rule) for p in people])


# --- text reports ------------------------------------------------------------------------------


def _pct(a: int, b: int) -> str:
    return f"{a / b:.1%}" if b else "-"


def format_detection(report: DetectionReport) -> list[str]:
    lines = [f"faces found: {report.found}/{report.faces} (recall {_pct(report.found, report.faces)})",
             f"boxes: {report.boxes}, not on a labelled face: {report.false_boxes} "
             f"({report.false_boxes / len(report.images):.1f} per photo)" if report.images else "no labelled photos",
             "", f"{'face width':>12} {'found':>6} {'faces':>6} {'recall':>7}"]
    for bucket, (found, n) in report.by_size().items():
        lines.append(f"{bucket:>12} {found:>6} {n:>6} {_pct(found, n):>7}")
    missed = [(r.path, m) for r in report.images for m in r.missed]
    if missed:
        lines += ["", "MISSED faces (left, top, right, bottom):"] + [f"  {p}: {m}" for p, m in missed]
    if report.extra:
        lines += ["", "photos without faces:"]
        lines += [f"  {r.path}: {len(r.false_boxes)} boxes {r.false_boxes}" for r in report.extra]
    return lines


def format_identity(report: IdentityReport) -> list[str]:
    d = report.to_dict()
    ident = d["enrolled_faces_min_width"]
    lines = [
        "enrolled: " + ", ".join(f"{p} ({len(v)})" for p, v in sorted(report.enrolled.items())),
        "held out of enrolment: " + (", ".join(report.held_out) or "nobody"),
        "",
        f"{'faces':<40} {'n':>4} {'correct':>8} {'WRONG':>6} {'unknown':>8}",
    ]

    def row(name: str, c: dict) -> str:
        return f"{name:<40} {c['faces']:>4} {c['correct']:>8} {c['wrong']:>6} {c['unknown']:>8}"

    lines.append(row("all", d["all"]))
    lines.append(row(f"enrolled people, >= {report.min_face_px} px wide", ident))
    lines.append(row(f"enrolled people, < {report.min_face_px} px wide",
                     report.counts([f for f in report.faces if f.enrolled and f.width < report.min_face_px])))
    lines.append(row("not enrolled (held out, strangers)", d["held_out_faces"]))
    lines += ["", f"correct keeps (enrolled, >= {report.min_face_px} px): "
              f"{ident['correct']}/{ident['faces']} ({_pct(ident['correct'], ident['faces'])})",
              f"wrong keeps (LEAKS, must be 0): {report.wrong_keeps}"]
    for f in report.faces:
        if f.kind == "wrong":
            lines.append(f"  LEAK: {f.photo}: {f.person} shown as {f.shown_as} (similarity {f.similarity:.3f})")
    unknown = [f for f in report.faces if f.enrolled and f.kind == "unknown"]
    if unknown:
        lines += ["", "enrolled faces left unknown (obscured):"]
        lines += [f"  {f.photo}: {f.person}, {f.width} px, {f.reason}"
                  + (f" (similarity {f.similarity:.3f})" if f.similarity is not None else "") for f in unknown]
    for photo, why in report.skipped:
        lines.append(f"skipped {photo}: {why}")
    return lines
