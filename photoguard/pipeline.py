"""Process photos: detect, identify, decide per channel, obscure, verify, write, route and audit.

Every photo dropped in ends in exactly one place:
- cleared: one stripped JPEG per channel in ``outbox/<channel>/``, original moved to ``archive/``;
- review: ``review/<stem>.jpg`` (the obscured candidate) + ``<stem>.json`` with the reason, original archived;
- failed: the file moved to ``failed/`` with ``<name>.txt`` saying why.

Crash safety comes from the journal (table ``photos``, keyed by content hash) and from staging: outputs are
written to ``.photoguard/staging/<sha>/`` first and linked into the outbox only when all are durable;
linking is idempotent, so a run killed at any point is finished by the next one.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np

from . import db
from .consent import ChildConsent, ConsentDecision, may_show
from .db import transaction
from .detect import FaceBox, FaceDetector, same_face
from .home import Home
from .identify import FaceEncoder, Identity, Template, default_encoder, encode_faces, match_faces
from .images import ImageError, fsync_dir, load_image, save_stripped_jpeg, sha256_file
from .obscure import obscure_face, obscure_mask

# Names of files that are still being written or are not photos staff meant to share.
IGNORED_SUFFIXES = (".tmp", ".part", ".crdownload", ".partial", ".download", ".swp")
IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}

SHOWN, OBSCURED = "shown", "obscured"

# The second look at an output only counts confident new faces: the first look (at the low detection
# threshold) is what finds faces; near-threshold specks that appear only once nearby faces are
# pixelated are artefacts of the obscuring, and would send most group photos to review.
SECOND_LOOK_SCORE = 0.5


class DiskFull(OSError):
    """The home's disk is full: processing stops, nothing is lost, photos wait in the inbox."""


def is_candidate(path: Path) -> bool:
    """Whether a file in the inbox is something to process (not a partial copy or system file)."""
    name = path.name
    lower = name.lower()
    if name.startswith(".") or name.startswith("~$") or lower in IGNORED_NAMES:
        return False
    return not lower.endswith(IGNORED_SUFFIXES)


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass
class FaceResult:
    box: tuple[int, int, int, int]
    score: float
    child: str | None
    distance: float | None
    reason: str
    actions: dict[str, str] = field(default_factory=dict)          # channel -> shown/obscured
    action_reasons: dict[str, str] = field(default_factory=dict)   # channel -> why


@dataclass
class PhotoResult:
    source: str
    status: str                      # cleared / review / failed / duplicate
    sha256: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)   # channel -> path (review: "review" -> path)
    faces: list[FaceResult] = field(default_factory=list)
    reason: str | None = None
    seconds: float = 0.0

    def face_summary(self) -> str:
        """"3 face(s): 1 shown, 2 obscured" — shown means shown on at least one channel."""
        shown = sum(1 for f in self.faces if SHOWN in f.actions.values())
        return f"{len(self.faces)} face(s): {shown} shown, {len(self.faces) - shown} obscured"

    def to_json(self) -> dict:
        data = asdict(self)
        data["faces"] = [
            {"box": list(f.box), "child": f.child, "distance": f.distance, "actions": f.actions,
             "reason": f.reason, "action_reasons": f.action_reasons}
            for f in self.faces
        ]
        return data


Action = tuple[str, str, ChildConsent | None]   # (shown/obscured, why, the consent used)


def decide(identities: Sequence[Identity], consents: dict[str, ChildConsent], channels: Sequence[str],
           today: date) -> dict[str, list[Action]]:
    """Pure: per channel, per face, shown only for an identified child whose consent allows it today."""
    actions: dict[str, list[Action]] = {}
    for channel in channels:
        per_face: list[Action] = []
        for identity in identities:
            if identity.child_id is None:
                per_face.append((OBSCURED, identity.reason, None))
                continue
            consent = consents.get(identity.child_id)
            verdict: ConsentDecision = may_show(consent, channel, today)
            per_face.append((SHOWN if verdict.allowed else OBSCURED, verdict.reason, consent))
        actions[channel] = per_face
    return actions


def _consent_json(consent: ChildConsent | None) -> str | None:
    if consent is None:
        return None
    return json.dumps({
        "child": consent.child_id, "face_matching": consent.face_matching, "channels": consent.channels,
        "expires": consent.expires.isoformat() if consent.expires else None, "problem": consent.problem,
    }, sort_keys=True)


def _unique_name(folder: Path, name: str) -> Path:
    stem, suffix = os.path.splitext(name)
    candidate = folder / name
    n = 0
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = folder / f"{stem}-{n}{suffix}"
    return candidate


def _link_or_copy(src: Path, dest: Path) -> None:
    """Give ``src`` the new name ``dest``; FileExistsError if that name is taken (never overwrites)."""
    try:
        os.link(src, dest)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
            raise
        # Another file system (or no hard links): copy to a temporary name, fsync, then claim the name.
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        try:
            os.link(tmp, dest)
        finally:
            os.unlink(tmp)


def place_durably(src: Path, dest: Path) -> None:
    """Move ``src`` to the exact path ``dest`` (chosen and recorded beforehand); safe to repeat after a crash.

    Link-then-unlink: at every moment the file exists under at least one of the two names.
    """
    if not src.exists():
        return  # already moved by an earlier, interrupted run
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if not os.path.samefile(src, dest):
            raise FileExistsError(errno.EEXIST, f"{dest} already exists and is another file", str(dest))
    else:
        _link_or_copy(src, dest)
        fsync_dir(dest.parent)
    os.unlink(src)
    fsync_dir(src.parent)


def _linked_copy(folder: Path, src: Path) -> Path | None:
    """``src`` already linked into ``folder`` under its name or a suffixed one (a run killed mid-move)."""
    stem, suffix = os.path.splitext(src.name)
    for candidate in folder.glob(f"{glob_escape(stem)}*{glob_escape(suffix)}"):
        try:
            if os.path.samefile(src, candidate):
                return candidate
        except OSError:
            continue
    return None


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def move_durably(src: Path, folder: Path, before_unlink: Callable[[Path], None] | None = None) -> Path:
    """Move a file into ``folder`` under a name not yet taken (``name-1.ext`` ...); never overwrites.

    ``before_unlink(dest)`` runs once the file is in place but still also at its old name (to write a
    note beside it): a run killed in between finds the file at both names and finishes the move.
    """
    folder.mkdir(parents=True, exist_ok=True)
    dest = _linked_copy(folder, src)
    while dest is None:
        candidate = _unique_name(folder, src.name)
        try:
            _link_or_copy(src, candidate)
        except FileExistsError:
            continue  # another worker took the name just now
        dest = candidate
    fsync_dir(folder)
    if before_unlink is not None:
        before_unlink(dest)
    os.unlink(src)
    fsync_dir(src.parent)
    return dest


def publish(staged: Path, folder: Path, stem: str) -> Path:
    """Link a staged JPEG into ``folder`` as ``stem.jpg`` (or ``stem-N.jpg``); never overwrites."""
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        dest = _unique_name(folder, f"{stem}.jpg")
        try:
            os.link(staged, dest)
        except FileExistsError:
            continue
        fsync_dir(folder)
        return dest


def _write_text_atomic(path: Path, text: str, private: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with open(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def collect(paths: Iterable[Path]) -> list[Path]:
    """Files to process from files and folders (recursively), skipping partial copies and system files."""
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(Path(root) / f for f in sorted(files) if is_candidate(Path(root) / f))
        elif path.is_file() and is_candidate(path):
            found.append(path)
    return found


class Processor:
    """Everything needed to process photos for one home; loads the models once."""

    def __init__(self, home: Home, conn: sqlite3.Connection | None = None, detector: FaceDetector | None = None,
                 threads: int | None = None) -> None:
        """``threads=1`` for a worker in a pool of processes, so the workers do not fight over the cores."""
        self.home = home
        self.settings = home.settings
        self.conn = conn or db.connect(home.database)
        self._detector = detector
        self._encoder: FaceEncoder | None = None
        self._threads = threads
        self.staging = home.state / "staging"
        self.staging.mkdir(mode=0o700, exist_ok=True)
        self.templates: list[Template] = []
        self.consents: dict[str, ChildConsent] = {}
        self.confusable: list[frozenset[str]] = []
        self.reload_roster()

    # Models are loaded on first use: a batch's parent process, which hands photos to workers, may
    # never need them.
    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = FaceDetector(threshold=self.settings.detect_threshold, threads=self._threads)
        return self._detector

    @property
    def encoder(self) -> FaceEncoder:
        # The process's one encoder, shared with roster sync (reference photos), so the network's
        # weights are in memory once.
        if self._encoder is None:
            self._encoder = default_encoder()
        return self._encoder

    # --- roster -------------------------------------------------------------------------------------

    def reload_roster(self) -> None:
        """Re-read templates and consents from the database (after ``enrol`` or a roster change)."""
        from .identify import look_alike_pairs
        from .roster import load_consents, load_templates

        self.roster_version = roster_version(self.conn)
        self.templates = load_templates(self.conn)
        self.template_matrix = np.stack([t.encoding for t in self.templates]) if self.templates else np.zeros((0, 128))
        self.consents = load_consents(self.conn)
        self.confusable = list(look_alike_pairs(self.templates, threshold=self.settings.match_similarity))

    # --- one photo ----------------------------------------------------------------------------------

    def identify(self, rgb: np.ndarray, faces: Sequence[FaceBox]) -> list[Identity]:
        encodings = (encode_faces(rgb, faces, min_width=self.settings.min_face_px, encoder=self.encoder)
                     if self.templates else [None] * len(faces))
        return match_faces(
            encodings, [f.width for f in faces], self.templates,
            threshold=self.settings.match_similarity, margin=self.settings.match_margin,
            min_face_px=self.settings.min_face_px, confusable=self.confusable,
        )

    def render(self, rgb: np.ndarray, faces: Sequence[FaceBox], shown: Sequence[bool], seed: int) -> np.ndarray:
        """A copy of the photo with every face not shown obscured.

        The noise for face i comes from (seed, i), so the same face looks the same in every channel's
        copy: averaging the channels' copies gives nothing back.
        """
        out = rgb.copy()
        for i, (face, keep) in enumerate(zip(faces, shown)):
            if not keep:
                obscure_face(out, face, method=self.settings.obscure_method, grow=self.settings.obscure_grow,
                             rng=np.random.default_rng([seed, i]))
        return out

    def verify(self, rendered: np.ndarray, faces: Sequence[FaceBox], shown: Sequence[bool],
               original: np.ndarray) -> str | None:
        """Second look at an output. Returns why it is not safe, or None.

        A face found that is neither one we show nor one we obscured, and that is there in the
        original photo too, was missed the first time; an obscured face that can still be recognised
        as an enrolled child was not obscured enough.
        """
        known = [f.box for f in faces]
        hidden_faces = [f for f, keep in zip(faces, shown) if not keep]
        for found in self.detector.detect_confident(rendered, max(self.settings.detect_threshold, SECOND_LOOK_SCORE)):
            box = found.box
            if any(same_face(box, k) for k in known):
                continue
            # Pixelation can itself look like a face to a detector: a find centred inside the area
            # obscure.py actually obscured is that, not a missed face ...
            cx = min(int((box[0] + box[2]) / 2), rendered.shape[1] - 1)
            cy = min(int((box[1] + box[3]) / 2), rendered.shape[0] - 1)
            if any(obscure_mask(rendered.shape, f, self.settings.obscure_grow)[cy, cx] for f in hidden_faces):
                continue
            # ... and so can pixelation next to a face. Such a "face" is not in the photo: a close look
            # at the same place in the original finds nothing there.
            if any(same_face(box, f.box) and not any(same_face(f.box, k) for k in known)
                   for f in self.detector.faces_near(original, box, self.settings.detect_threshold)):
                return (f"a face at {list(box)} was found only on the second look; "
                        "check that it is obscured before releasing")
        hidden = [f for f, keep in zip(faces, shown) if not keep and f.width >= self.settings.min_face_px]
        if hidden and self.templates:
            for face, encoding in zip(hidden, encode_faces(rendered, hidden, encoder=self.encoder)):
                if encoding is None:
                    continue
                # Still recognisable: as alike to any one reference of a child as a match must be to their
                # mean (stricter than the matching rule: when in doubt, a person looks).
                similarities = self.template_matrix @ encoding
                best = int(np.argmax(similarities))
                if similarities[best] >= self.settings.match_similarity:
                    return (f"the obscured face at {list(face.box)} still looks like "
                            f"{self.templates[best].child_id}; obscure it by hand")
        return None

    def process(self, path: Path, today: date | None = None, sha: str | None = None) -> PhotoResult:
        """Process one file end to end. Raises DiskFull (photo left in place) when the disk is full."""
        started = time.monotonic()
        today = today or date.today()
        path = Path(path)
        if roster_version(self.conn) != self.roster_version:
            self.reload_roster()  # another process synced the roster: decide with today's consents
        try:
            sha = sha or sha256_file(path)
        except FileNotFoundError:
            return PhotoResult(path.name, "failed", reason="the file disappeared before it could be read")
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DiskFull(errno.ENOSPC, str(exc)) from exc
            return PhotoResult(path.name, "failed", reason=f"could not read the file: {exc.strerror}")

        row = self.conn.execute("SELECT * FROM photos WHERE sha256 = ?", (sha,)).fetchone()
        if row is not None and row["state"] == "done" and row["outcome"] != "failed":
            return self._duplicate(path, sha, row, started)
        if row is not None and row["state"] == "publishing":
            return self._finish_publishing(path, sha, started)
        self.conn.execute(
            "INSERT INTO photos (sha256, source, source_path, state, received_at) VALUES (?, ?, ?, 'processing', ?) "
            "ON CONFLICT(sha256) DO UPDATE SET state = 'processing', source = excluded.source, "
            "source_path = excluded.source_path",
            (sha, path.name, str(path), now_iso()),
        )
        try:
            prepared = self._decide_and_stage(path, sha, today)
        except OSError as exc:
            self._clear_staging(sha)
            self.conn.execute("UPDATE photos SET state = 'received' WHERE sha256 = ?", (sha,))
            if exc.errno == errno.ENOSPC:
                raise DiskFull(errno.ENOSPC, f"no space left on the disk of {self.home.root}; "
                               f"{path.name} stays in the inbox — free some space and run again") from exc
            raise
        except Exception as exc:  # noqa: BLE001 — one photo that breaks a stage must not stop the batch
            self._clear_staging(sha)
            return self._fail(path, sha, f"PhotoGuard could not process it ({type(exc).__name__}: {exc}); "
                              "please report this", started)
        if isinstance(prepared, str):
            return self._fail(path, sha, prepared, started)
        # Decided and staged ('publishing'): from here on the photo is only ever finished, never decided
        # again. If finishing fails, the next run's resume_interrupted completes it.
        try:
            return self._finish_publishing(path, sha, started, prepared)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DiskFull(errno.ENOSPC, f"no space left on the disk of {self.home.root} while publishing "
                               f"{path.name}; free some space and run again to finish it") from exc
            raise

    def _decide_and_stage(self, path: Path, sha: str, today: date) -> list[FaceResult] | str:
        """Detect, identify, decide, render, verify and stage the outputs; record the plan.

        Returns the faces, or why the file cannot be processed (it then goes to failed/)."""
        try:
            image = load_image(path)
        except ImageError as exc:
            return exc.reason
        except MemoryError:
            return "image too large to process on this machine"
        if image.sha256 and image.sha256 != sha:
            return "the file changed while it was being read; drop it into the inbox again"
        rgb = image.rgb
        height, width = rgb.shape[:2]
        channels = self.settings.channels
        faces = self.detector.detect(rgb)
        identities = self.identify(rgb, faces)
        decision = decide(identities, self.consents, channels, today)
        seed = secrets.randbits(63)

        results = [FaceResult(f.box, float(f.score), ident.child_id, ident.distance, ident.reason)
                   for f, ident in zip(faces, identities)]
        for channel, per_face in decision.items():
            for face_result, (action, reason, _) in zip(results, per_face):
                face_result.actions[channel] = action
                face_result.action_reasons[channel] = reason

        # Channels with the same faces shown share one rendering (and one verification).
        renders: dict[tuple[bool, ...], np.ndarray] = {}
        problem = None
        for channel in channels:
            shown = tuple(a == SHOWN for a, _, _ in decision[channel])
            if shown not in renders:
                renders[shown] = self.render(rgb, faces, shown, seed)
                problem = problem or self.verify(renders[shown], faces, shown, rgb)

        stem = Path(path.name).stem or "photo"
        staging = self.staging / sha
        staging.mkdir(mode=0o700, exist_ok=True)
        if problem is None:
            # One JPEG per distinct rendering, hard-linked into each channel's outbox that gets it.
            staged: dict[tuple[bool, ...], str] = {}
            plan = {}
            for channel in channels:
                shown = tuple(a == SHOWN for a, _, _ in decision[channel])
                if shown not in staged:
                    staged[shown] = str(save_stripped_jpeg(renders[shown], staging, f"render{len(staged)}"))
                plan[channel] = staged[shown]
            status, reason = "cleared", None
        else:
            # The candidate for review shows only faces shown on every channel, so releasing it
            # anywhere is safe.
            common = tuple(all(decision[c][i][0] == SHOWN for c in channels) for i in range(len(faces)))
            candidate = renders.get(common)
            if candidate is None:
                candidate = self.render(rgb, faces, common, seed)
            plan = {"review": str(save_stripped_jpeg(candidate, staging, "review"))}
            status, reason = "review", problem

        with transaction(self.conn):  # audit + plan, all or nothing
            self.conn.execute("DELETE FROM faces WHERE photo_sha256 = ?", (sha,))
            self.conn.execute("DELETE FROM face_actions WHERE photo_sha256 = ?", (sha,))
            for i, (face, ident) in enumerate(zip(faces, identities)):
                self.conn.execute(
                    "INSERT INTO faces (photo_sha256, idx, box, score, child_id, distance, reason) VALUES (?,?,?,?,?,?,?)",
                    (sha, i, json.dumps(list(face.box)), float(face.score), ident.child_id, ident.distance, ident.reason))
                for channel in channels:
                    action, why, consent = decision[channel][i]
                    self.conn.execute(
                        "INSERT INTO face_actions (photo_sha256, face_idx, channel, action, reason, consent) VALUES (?,?,?,?,?,?)",
                        (sha, i, channel, action, why, _consent_json(consent)))
            self.conn.execute(
                "UPDATE photos SET state = 'publishing', outcome = ?, reason = ?, width = ?, height = ?, plan = ?, "
                "source = ?, source_path = ?, seed = ? WHERE sha256 = ?",
                (status, reason, width, height, json.dumps({"stem": stem, "files": plan}), path.name, str(path),
                 str(seed), sha))
        return results

    def _finish_publishing(self, path: Path, sha: str, started: float, faces: list[FaceResult] | None = None) -> PhotoResult:
        """Link the staged files into place, archive the original, mark done. Safe to repeat after a crash."""
        row = self.conn.execute("SELECT * FROM photos WHERE sha256 = ?", (sha,)).fetchone()
        plan = json.loads(row["plan"])
        stem, files = plan["stem"], plan["files"]
        published: dict[str, str] = plan.get("published", {})
        for channel, staged in files.items():
            if channel in published:
                continue
            folder = self.home.review if channel == "review" else self.home.outbox_for(channel)
            staged_path = Path(staged)
            # A crash after linking but before recording: find our own file by inode, not by name.
            dest = _find_link(folder, staged_path)
            if dest is None:
                dest = publish(staged_path, folder, stem)
            published[channel] = str(dest.relative_to(self.home.root))
            plan["published"] = published
            self.conn.execute("UPDATE photos SET plan = ? WHERE sha256 = ?", (json.dumps(plan), sha))
        if "review" in files:
            review_jpg = self.home.root / published["review"]
            note = {"source": row["source"], "sha256": sha, "reason": row["reason"], "created": now_iso(),
                    "faces": [dict(r) for r in self.conn.execute(
                        "SELECT idx, box, child_id, distance, reason FROM faces WHERE photo_sha256 = ? ORDER BY idx", (sha,))]}
            # It names children (who matched, who was too alike to tell): for the manager only.
            _write_text_atomic(review_jpg.with_suffix(".json"), json.dumps(note, indent=2), private=True)

        archive_rel = row["archive_path"]
        if archive_rel is None:
            # Choose and record the archive name first, so a run killed mid-move finds it again. The
            # content hash in the name means no other photo can ever take it.
            day_folder = self.home.archive / date.today().isoformat()
            day_folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            archive_rel = str((day_folder / f"{sha[:12]}_{row['source']}").relative_to(self.home.root))
            self.conn.execute("UPDATE photos SET archive_path = ? WHERE sha256 = ?", (archive_rel, sha))
        archived = self.home.root / archive_rel
        place_durably(path, archived)
        if archived.exists():
            os.chmod(archived, 0o600)
        else:
            archive_rel = None  # the original vanished before it could be archived (someone moved it)
        finished = now_iso()
        seconds = time.monotonic() - started
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE photos SET state = 'done', archive_path = ?, finished_at = ?, seconds = ? WHERE sha256 = ?",
                (archive_rel, finished, seconds, sha))
            hashes: dict[str, str] = {}
            for channel, rel in published.items():
                if channel != "review":
                    staged = files[channel]
                    if staged not in hashes:
                        hashes[staged] = _hash_if_there(Path(staged)) or _hash_if_there(self.home.root / rel)
                    self.conn.execute(
                        "INSERT OR REPLACE INTO outputs (photo_sha256, channel, path, file_sha256, created_at) "
                        "VALUES (?,?,?,?,?)", (sha, channel, rel, hashes[staged], finished))
            self._event("processed", sha, detail=f"{row['outcome']}: {row['reason'] or 'ok'}")
        self._clear_staging(sha)
        if faces is None:
            faces = self._faces_from_audit(sha)
        outputs = {c: str(self.home.root / rel) for c, rel in published.items()}
        return PhotoResult(row["source"], row["outcome"], sha, outputs, faces, row["reason"], seconds)

    def _faces_from_audit(self, sha: str) -> list[FaceResult]:
        faces = []
        for f in self.conn.execute("SELECT * FROM faces WHERE photo_sha256 = ? ORDER BY idx", (sha,)):
            result = FaceResult(tuple(json.loads(f["box"])), f["score"], f["child_id"], f["distance"], f["reason"])
            for a in self.conn.execute("SELECT * FROM face_actions WHERE photo_sha256 = ? AND face_idx = ?", (sha, f["idx"])):
                result.actions[a["channel"]] = a["action"]
                result.action_reasons[a["channel"]] = a["reason"]
            faces.append(result)
        return faces

    def _fail(self, path: Path, sha: str, reason: str, started: float) -> PhotoResult:
        def note(dest: Path) -> None:
            _write_text_atomic(dest.with_name(dest.name + ".txt"),
                               f"{path.name} could not be processed: {reason}\n"
                               f"It was not shared. Fix or re-export the photo and drop it into the inbox again.\n")

        dest = move_durably(path, self.home.failed, before_unlink=note)
        seconds = time.monotonic() - started
        with transaction(self.conn):
            self._event("processed", sha, detail=f"failed: {path.name}: {reason}")
            # Kept for the report and audit, but not as "done" content: the same bytes dropped again
            # are tried again (a failure may have been passing).
            self.conn.execute(
                "UPDATE photos SET state = 'done', outcome = 'failed', reason = ?, finished_at = ?, seconds = ?, "
                "archive_path = NULL, plan = ? WHERE sha256 = ?",
                (reason, now_iso(), seconds, json.dumps({"failed": str(dest.relative_to(self.home.root))}), sha))
        return PhotoResult(path.name, "failed", sha, {"failed": str(dest)}, [], reason, seconds)

    def _duplicate(self, path: Path, sha: str, row: sqlite3.Row, started: float) -> PhotoResult:
        archived = row["archive_path"]
        if archived and (self.home.root / archived).exists() and os.path.samefile(path, self.home.root / archived):
            return PhotoResult(path.name, "duplicate", sha, reason="already archived")
        folder = self.home.archive / "duplicates"
        folder.mkdir(mode=0o700, exist_ok=True)
        def note(dest: Path) -> None:
            os.chmod(dest, 0o600)
            _write_text_atomic(dest.with_name(dest.name + ".txt"),
                               f"{path.name} has the same content as {row['source']}, processed {row['finished_at']} "
                               f"({row['outcome']}); this copy was not processed again.\n", private=True)

        moved = move_durably(path, folder, before_unlink=note)
        with transaction(self.conn):
            self._event("duplicate", sha, detail=f"{path.name} = {row['source']}")
        return PhotoResult(path.name, "duplicate", sha, {"archive": str(moved)}, [],
                           f"same photo as {row['source']} (already processed)", time.monotonic() - started)

    def give_up(self, path: Path, sha: str, reason: str) -> PhotoResult | None:
        """Send a file that breaks processing every time to failed/. None (and the file left where it
        is) when outputs for these bytes already exist: failing it then would put the photo in two
        places; the next resume finishes it instead."""
        row = self.conn.execute("SELECT state, outcome FROM photos WHERE sha256 = ?", (sha,)).fetchone()
        if row is not None and (row["state"] == "publishing" or (row["state"] == "done" and row["outcome"] != "failed")):
            return None
        self._clear_staging(sha)
        return self._fail(path, sha, reason, time.monotonic())

    def _clear_staging(self, sha: str) -> None:
        shutil.rmtree(self.staging / sha, ignore_errors=True)

    def _event(self, kind: str, sha: str | None = None, child: str | None = None, detail: str | None = None) -> None:
        self.conn.execute("INSERT INTO events (at, kind, photo_sha256, child_id, detail) VALUES (?,?,?,?,?)",
                          (now_iso(), kind, sha, child, detail))


def _hash_if_there(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except FileNotFoundError:
        return None


def roster_version(conn: sqlite3.Connection) -> tuple:
    """Changes whenever a consent or a template changes (any process's sync), so workers reload in time."""
    return tuple(conn.execute(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM consent_history), (SELECT COUNT(*) FROM templates), "
        "(SELECT COALESCE(MAX(id), 0) FROM templates), (SELECT COUNT(*) FROM children)").fetchone())


def open_processor(home: Home, echo: Callable[[str], None] = print) -> Processor:
    """Load the engine, bring the roster up to date from children.csv and re-check the outbox
    against today's consents (a consent may have expired overnight)."""
    from .roster import sync_roster

    processor = Processor(home)
    if home.roster_csv.exists() or processor.consents:
        # A roster that cannot be read (or was deleted while children are on file) raises RosterError:
        # nothing is processed until it is fixed, since the consents on file might include ones the
        # manager has just withdrawn. A new home with no roster at all obscures every face.
        sync_roster(home, processor.conn, detector=lambda: processor.detector)
        processor.reload_roster()
    for change in recheck_outbox(processor):
        echo(change.describe())
    return processor


def _find_link(folder: Path, staged: Path) -> Path | None:
    """A name in ``folder`` that is the same file (hard link) as ``staged``."""
    try:
        target = staged.stat()
    except FileNotFoundError:
        return None
    for entry in os.scandir(folder):
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if st.st_ino == target.st_ino and st.st_dev == target.st_dev:
            return Path(entry.path)
    return None


def resume_interrupted(processor: Processor) -> list[PhotoResult]:
    """Finish photos a killed run left half done; re-queue ones that had not reached publishing."""
    results = []
    rows = processor.conn.execute("SELECT sha256, source_path, state FROM photos WHERE state != 'done'").fetchall()
    for row in rows:
        sha = row["sha256"]
        path = Path(row["source_path"]) if row["source_path"] else None
        if row["state"] == "publishing":
            results.append(processor._finish_publishing(path or Path("/nonexistent"), sha, time.monotonic()))
        else:
            # Nothing was published; the photo is still where it was dropped and will be taken again.
            processor._clear_staging(sha)
            processor.conn.execute("DELETE FROM photos WHERE sha256 = ? AND state != 'done'", (sha,))
    # A run killed between marking a photo done and removing its staging folder leaves the folder behind.
    for folder in processor.staging.iterdir():
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
    if results:
        # Those photos were decided before the interruption; a consent may have changed since.
        recheck_outbox(processor)
    return results


# --- batches ----------------------------------------------------------------------------------------

_worker: Processor | None = None  # one per worker process, so each loads the models once


def _init_worker(root: str) -> None:
    global _worker
    from .home import open_home

    _worker = Processor(open_home(root), threads=1)


def _work(item: tuple[str, str, str]) -> PhotoResult:
    path, sha, today = item
    assert _worker is not None
    return _worker.process(Path(path), date.fromisoformat(today), sha=sha)


def run_batch(processor: Processor, paths: Sequence[Path], *, workers: int = 1, today: date | None = None,
              on_result: Callable[[PhotoResult], None] | None = None) -> list[PhotoResult]:
    """Process files (the caller holds the home's lock). Each distinct content is processed once;
    later copies of the same bytes are archived as duplicates after the first is done."""
    today = today or date.today()
    results: list[PhotoResult] = []

    def done(result: PhotoResult) -> None:
        results.append(result)
        if on_result:
            on_result(result)

    for result in resume_interrupted(processor):
        done(result)
    first: dict[str, Path] = {}
    later: list[tuple[Path, str]] = []
    for path in paths:
        try:
            sha = sha256_file(path)
        except FileNotFoundError:
            continue  # taken away while we were listing
        except OSError as exc:
            done(PhotoResult(path.name, "failed", reason=f"could not read the file: {exc.strerror}"))
            continue
        if sha in first:
            later.append((path, sha))
        else:
            first[sha] = path
    if workers <= 1 or len(first) <= 1:
        for sha, path in first.items():
            done(processor.process(path, today, sha=sha))
    else:
        from concurrent.futures import ProcessPoolExecutor
        import multiprocessing

        # forkserver/spawn: never fork a process that holds an open SQLite connection and model state.
        ctx = multiprocessing.get_context("forkserver")
        items = [(str(p), sha, today.isoformat()) for sha, p in first.items()]
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(str(processor.home.root),)) as pool:
            for result in pool.map(_work, items):
                done(result)
    for path, sha in later:
        done(processor.process(path, today, sha=sha))
    return results


# --- consent changes after photos were cleared ------------------------------------------------------

@dataclass
class Recheck:
    source: str
    channel: str
    path: str
    action: str          # 'rerendered', 'removed', 'collected'
    reason: str

    def describe(self) -> str:
        return f"outbox {self.channel}/{Path(self.path).name}: {self.action} — {self.reason}"


def recheck_outbox(processor: Processor, today: date | None = None) -> list[Recheck]:
    """Re-render every uncollected outbox image that shows a child whose consent no longer allows it.

    Run after every roster sync, at the start of every run (consents expire overnight) and after
    resuming. The image is rebuilt from the archived original with the stored faces; if the original
    is gone, or re-rendering fails, it is removed.
    """
    today = today or date.today()
    conn = processor.conn
    if roster_version(conn) != processor.roster_version:
        processor.reload_roster()
    query = (
        "SELECT o.photo_sha256 AS sha, o.channel, f.child_id, f.idx FROM outputs o "
        "JOIN face_actions a ON a.photo_sha256 = o.photo_sha256 AND a.channel = o.channel AND a.action = 'shown' "
        "JOIN faces f ON f.photo_sha256 = a.photo_sha256 AND f.idx = a.face_idx "
        "WHERE o.removed_at IS NULL"
    )
    stale: dict[str, dict[str, dict[int, str]]] = {}   # photo -> channel -> face -> why not any more
    for row in conn.execute(query).fetchall():
        verdict = may_show(processor.consents.get(row["child_id"]), row["channel"], today)
        if not verdict.allowed:
            stale.setdefault(row["sha"], {}).setdefault(row["channel"], {})[row["idx"]] = verdict.reason
    changes: list[Recheck] = []
    for sha, channels in sorted(stale.items()):
        changes += _OutboxFix(processor, sha).apply(channels)
    return changes


class _OutboxFix:
    """Re-render one photo's outbox images; the original is decoded once for all its channels."""

    def __init__(self, processor: Processor, sha: str) -> None:
        self.processor, self.sha = processor, sha
        self.conn, self.home = processor.conn, processor.home
        self.photo = self.conn.execute("SELECT * FROM photos WHERE sha256 = ?", (sha,)).fetchone()
        self.faces = [FaceBox(*json.loads(f["box"]), score=f["score"] or 0.0) for f in self.conn.execute(
            "SELECT box, score FROM faces WHERE photo_sha256 = ? ORDER BY idx", (sha,))]
        self._original: np.ndarray | None = None
        self._renders: dict[tuple[bool, ...], tuple[np.ndarray, str | None]] = {}

    def apply(self, channels: dict[str, dict[int, str]]) -> list[Recheck]:
        changes = []
        for channel, withdrawn in sorted(channels.items()):
            try:
                changes.append(self._fix(channel, withdrawn))
            except Exception as exc:  # noqa: BLE001 — fail closed: an image we cannot fix is taken out
                changes.append(self._remove(channel, withdrawn, f"re-rendering failed ({type(exc).__name__}: {exc})"))
        return changes

    def _output(self, channel: str) -> sqlite3.Row:
        return self.conn.execute("SELECT * FROM outputs WHERE photo_sha256 = ? AND channel = ?",
                                 (self.sha, channel)).fetchone()

    def _record(self, channel: str, withdrawn: dict[int, str], action: str, reason: str,
                new_hash: str | None = None) -> Recheck:
        out = self._output(channel)
        with transaction(self.conn):
            for idx, face_reason in withdrawn.items():
                self.conn.execute("UPDATE face_actions SET action = 'obscured', reason = ? WHERE photo_sha256 = ? "
                                  "AND face_idx = ? AND channel = ?", (face_reason, self.sha, idx, channel))
            if action == "rerendered":
                self.conn.execute("UPDATE outputs SET file_sha256 = ? WHERE photo_sha256 = ? AND channel = ?",
                                  (new_hash, self.sha, channel))
            else:
                self.conn.execute("UPDATE outputs SET removed_at = ? WHERE photo_sha256 = ? AND channel = ?",
                                  (now_iso(), self.sha, channel))
            self.processor._event(action, self.sha, detail=f"{channel}: {out['path']}: {reason}")
        return Recheck(self.photo["source"], channel, out["path"], action, reason)

    def _remove(self, channel: str, withdrawn: dict[int, str], why: str) -> Recheck:
        out_path = self.home.root / self._output(channel)["path"]
        try:
            out_path.unlink()
            fsync_dir(out_path.parent)
        except FileNotFoundError:
            pass
        return self._record(channel, withdrawn, "removed", f"removed: {why}")

    def _render(self, shown: tuple[bool, ...]) -> tuple[np.ndarray, str | None]:
        """The photo with only ``shown`` faces visible, and why it is not safe (or None)."""
        if shown not in self._renders:
            if self._original is None:
                self._original = load_image(self.home.root / self.photo["archive_path"]).rgb
            seed = int(self.photo["seed"]) if self.photo["seed"] else secrets.randbits(63)
            rendered = self.processor.render(self._original, self.faces, shown, seed)
            self._renders[shown] = (rendered, self.processor.verify(rendered, self.faces, shown, self._original))
        return self._renders[shown]

    def _fix(self, channel: str, withdrawn: dict[int, str]) -> Recheck:
        out = self._output(channel)
        out_path = self.home.root / out["path"]
        why = "; ".join(sorted(set(withdrawn.values())))
        if not out_path.exists() or (out["file_sha256"] and _hash_if_there(out_path) != out["file_sha256"]):
            # Gone, or another photo has taken the name since: ours was collected.
            return self._record(channel, withdrawn, "collected",
                                f"already collected from the outbox before the change ({why})")
        archived = self.photo["archive_path"]
        if not archived or not (self.home.root / archived).exists():
            return self._remove(channel, withdrawn, f"{why}; the original is no longer archived")
        actions = {a["face_idx"]: a["action"] for a in self.conn.execute(
            "SELECT face_idx, action FROM face_actions WHERE photo_sha256 = ? AND channel = ?", (self.sha, channel))}
        shown = tuple(actions.get(i) == SHOWN and i not in withdrawn for i in range(len(self.faces)))
        rendered, problem = self._render(shown)
        if problem is not None:
            return self._remove(channel, withdrawn, f"{why}; re-rendering was not safe: {problem}")
        staging = self.processor.staging / f"recheck-{self.sha}"
        staging.mkdir(mode=0o700, exist_ok=True)
        try:
            staged = save_stripped_jpeg(rendered, staging, channel)
            new_hash = sha256_file(staged)
            os.replace(staged, out_path)  # the one place we overwrite: the same photo, now with the child obscured
            fsync_dir(out_path.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self._record(channel, withdrawn, "rerendered", f"re-rendered with the face obscured: {why}", new_hash)
