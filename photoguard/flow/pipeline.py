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
import sqlite3
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np

from photoguard.engine.boxes import same_face
from photoguard.engine.detect import FaceBox, FaceDetector
from photoguard.engine.identify import FaceEncoder, Identity, Template, default_encoder, encode_faces, match_faces
from photoguard.engine.obscure import obscure_face
from photoguard.engine.seen import Seen
from photoguard.flow.results import _DISK_FULL, PRIVATE_DIR, DiskFull, FaceResult, PhotoResult
from photoguard.flow.second_look import SecondLooks
from photoguard.flow.set_aside import SetAside
from photoguard.photos.durable import (_write_text_atomic, display_name, drop_folder, make_folders, place_durably,
                                       publish, safe_name, staged_copy)
from photoguard.photos.images import MAX_FILE_BYTES, ImageError, LoadedImage, load_image, sha256_file
from photoguard.photos.intake import NotAPhotoFile, Snapshot, Source, StillChanging, release_source, take_snapshot
from photoguard.photos.save import save_stripped_jpeg
from photoguard.photos.shrink import shrink_to
from photoguard.rules.consent import ChildConsent
from photoguard.rules.decide import (SECOND_LOOK_REASON, SHOWN, Action, _consent_json, decide, question_words,
                                     questions_to_ask)
from photoguard.store import db
from photoguard.store.db import transaction
from photoguard.store.faces import landmarks_json
from photoguard.store.home import Home
from photoguard.store.localtime import now_iso
from photoguard.store.roster import roster_version


class Processor(SetAside, SecondLooks):
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
            self._detector = FaceDetector(threshold=self.settings.detect_threshold, threads=self._threads,
                                          min_face_px=self.settings.detect_min_face_px,
                                          max_side=self.settings.outbox_max_side)
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
        from photoguard.engine.identify import look_alike_pairs
        from photoguard.store.roster import load_consents, load_templates

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

    def published(self, rendered: np.ndarray, like: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """The picture as it leaves PhotoGuard (outbox, release, review copy and preview): ``rendered``
        shrunk to at most ``outbox.max_side`` px on its long side. The one place this is done; it comes
        after obscuring and after the second look (which looks at the full-size picture), and shrinking
        never brings back what was obscured. With the detector's floor (detect.floor_px), a face too
        small to be found is at most detect.UNRECOGNISABLE_PX wide here. ``like``: (another rendering of the
        same photo, its published picture): only where the two differ is shrunk again (``shrink.shrink_to``),
        with the same result."""
        return shrink_to(rendered, self.settings.outbox_max_side, like)

    def process(self, path: Path, today: date | None = None, sha: str | None = None,
                _again: bool = True, loaded: LoadedImage | None = None) -> PhotoResult:
        """Process one file end to end. Raises DiskFull (photo left in place) when the disk is full.

        Works on a private snapshot of the file (see intake.py); ``sha`` is the caller's hash of the
        file, only a hint: the snapshot's own hash is what counts. ``loaded``: the file decoded ahead
        (while the photo before it was processed); used only if it is of the snapshot's very bytes."""
        started = time.monotonic()
        today = today or date.today()
        path = Path(path)
        name = display_name(path.name)
        if roster_version(self.conn) != self.roster_version:
            self.reload_roster()  # another process synced the roster: decide with today's consents
        try:
            snap = take_snapshot(path, self.staging, MAX_FILE_BYTES)
        except FileNotFoundError:
            return PhotoResult(name, "failed", reason="the file disappeared before it could be read")
        except NotAPhotoFile as exc:
            return self._refuse(path, exc.reason, started)
        except StillChanging:
            return PhotoResult(name, "waiting", reason="the file is still being written; it stays in the inbox "
                               "and is taken once it is complete")
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise DiskFull(errno.ENOSPC, f"no space left on the disk of {self.home.root}; "
                               f"{name} stays in the inbox — free some space and run again") from exc
            return self._refuse(path, f"could not read the file: {exc.strerror}", started)
        sha = snap.sha256

        row = self.conn.execute("SELECT * FROM photos WHERE sha256 = ?", (sha,)).fetchone()
        if row is not None and row["state"] == "publishing":
            # The same bytes, decided by a run that was interrupted: finish that one, then this copy is
            # a duplicate of it.
            os.unlink(snap.path)
            finished = self._finish_publishing(path, sha, started)
            return self.process(path, today, _again=False) if _again and snap.source.unchanged() else finished
        folder = self.staging / sha
        folder.mkdir(mode=0o700, exist_ok=True)
        original = folder / "original"
        os.replace(snap.path, original)
        snap = Snapshot(original, sha, snap.source)
        if row is not None and row["state"] == "done" and row["outcome"] != "failed":
            return self._duplicate(snap, name, row, started)
        self.conn.execute(
            "INSERT INTO photos (sha256, source, source_path, state, received_at) VALUES (?, ?, ?, 'processing', ?) "
            "ON CONFLICT(sha256) DO UPDATE SET state = 'processing', source = excluded.source, "
            "source_path = excluded.source_path",
            (sha, name, display_name(path), now_iso()),
        )
        try:
            prepared = self._decide_and_stage(snap, name, sha, today, loaded=loaded)
        except OSError as exc:
            self._clear_staging(sha)
            self.conn.execute("UPDATE photos SET state = 'received' WHERE sha256 = ?", (sha,))
            if exc.errno in _DISK_FULL:
                raise DiskFull(errno.ENOSPC, f"no space left on the disk of {self.home.root}; "
                               f"{name} stays in the inbox — free some space and run again") from exc
            raise
        except Exception as exc:  # noqa: BLE001 — one photo that breaks a stage must not stop the batch
            return self._fail(snap.path, name, sha, f"PhotoGuard could not process it ({type(exc).__name__}: "
                              f"{display_name(str(exc))}); please report this", started, snap.source)
        if isinstance(prepared, str):
            return self._fail(snap.path, name, sha, prepared, started, snap.source)
        # Decided and staged ('publishing'): from here on the photo is only ever finished, never decided
        # again. If finishing fails, the next run's resume_interrupted completes it.
        try:
            return self._finish_publishing(path, sha, started, prepared)
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise DiskFull(errno.ENOSPC, f"no space left on the disk of {self.home.root} while publishing "
                               f"{name}; free some space and run again to finish it") from exc
            raise

    def _decide_and_look(self, rgb: np.ndarray, faces: list[FaceBox], identities: list[Identity],
                         channels: Sequence[str], today: date, seed: int, main_copy: np.ndarray | None = None,
                         ) -> tuple[dict[str, list[Action]], dict[tuple[bool, ...], np.ndarray], str | None]:
        """Decide, render each channel's picture and look at it again; returns the decision, the renders
        and why the photo needs a person (or None).

        A face found only on the second look joins ``faces`` (and ``identities``) as unknown, so it is
        obscured in every picture, recorded and re-checked like any face; the pictures are then made
        and looked at again, a few times at most. ``main_copy``: ``rgb`` as the first look's main pass searched it.
        """
        problems: list[str] = []
        in_original: dict[tuple[int, int, int, int], bool] = {}
        seen = Seen()   # the networks' answers for this photo's pictures, shared by their second looks
        for _ in range(3):
            in_original.clear()   # ``faces`` grew: what counts as known changed
            decision = decide(identities, self.consents, channels, today)
            # Channels with the same faces shown share one rendering (and one second look).
            renders: dict[tuple[bool, ...], np.ndarray] = {}
            missed: list[FaceBox] = []
            for channel in channels:
                shown = tuple(a == SHOWN for a, _, _ in decision[channel])
                if shown in renders:
                    continue
                renders[shown] = self.render(rgb, faces, shown, seed)
                look = self.second_look(renders[shown], faces, shown, rgb, in_original, around_obscured=True, seen=seen,
                                        original_copy=main_copy)
                look.missed = [m for m in look.missed if not any(same_face(m.box, o.box) for o in missed)]
                missed += look.missed
                if look.problem():
                    problems.append(look.problem())
            if not missed:
                break
            faces += missed
            identities += [Identity(None, None, None, SECOND_LOOK_REASON) for _ in missed]
        else:
            decision = decide(identities, self.consents, channels, today)
            renders = {}
        problem = "; ".join(dict.fromkeys(problems)) or None
        return decision, renders, problem

    def _decide_and_stage(self, snap: Snapshot, name: str, sha: str, today: date,
                          dropped: tuple[str, str] | None = None, loaded: LoadedImage | None = None,
                          ) -> list[FaceResult] | str:
        """Detect, identify, decide, render, verify and stage the outputs; record the plan.

        ``dropped``: (drop folder, source path) as first recorded, for a photo decided again from its
        archived original (``reprocess``); by default both come from where ``snap`` was taken.
        Returns the faces, or why the file cannot be processed (it then goes to failed/)."""
        if loaded is not None and loaded.sha256 == sha:
            image = loaded   # decoded ahead from the same bytes: the hash of what was decoded is the snapshot's
        else:
            try:
                image = load_image(snap.path)
            except ImageError as exc:
                return exc.reason
            except MemoryError:
                return "image too large to process on this machine"
        if image.sha256 and image.sha256 != sha:
            return "the file changed while it was being read; drop it into the inbox again"
        rgb = image.rgb
        height, width = rgb.shape[:2]
        channels = self.settings.channels
        # Numbered as the manager reads the photo: left to right (then top to bottom), on every page and in the CLI.
        main_copy = self.detector.main_copy(rgb)   # the first look's, and the second look's beginning
        faces = sorted(self.detector.detect(rgb, main_copy), key=lambda f: (f.box[0], f.box[1]))
        identities = list(self.identify(rgb, faces))
        seed = secrets.randbits(63)
        decision, renders, problem = self._decide_and_look(rgb, faces, identities, channels, today, seed, main_copy)
        questions = questions_to_ask(identities, [f.width for f in faces], self.consents, channels, today,
                                     ask_from=self.settings.match_ask_from, min_face_px=self.settings.min_face_px,
                                     ask_standout=self.settings.match_ask_standout)
        # Held only to ask who someone is (the pictures themselves passed the second look): the manager is
        # answering a question, not deciding whether the photo may go out, so its page ticks every channel.
        held_only_to_ask = bool(questions) and problem is None
        if questions:
            problem = "; ".join(filter(None, (problem, question_words(questions, faces, width, height))))
        asked = {q.face: q.child_id for q in questions}

        results = [FaceResult(f.box, float(f.score), ident.child_id, ident.distance, ident.reason)
                   for f, ident in zip(faces, identities)]
        for channel, per_face in decision.items():
            for face_result, (action, reason, _) in zip(results, per_face):
                face_result.actions[channel] = action
                face_result.action_reasons[channel] = reason

        stem = Path(safe_name(name)).stem or "photo"
        staging = self.staging / sha
        staging.mkdir(mode=0o700, exist_ok=True)
        if problem is None:
            # One JPEG encoded per distinct rendering, but a file of its own for each channel: an edit
            # to one channel's copy (or a re-render after a consent change) never touches another's.
            staged: dict[tuple[bool, ...], Path] = {}
            plan = {}
            last: tuple[np.ndarray, np.ndarray] | None = None
            for channel in channels:
                shown = tuple(a == SHOWN for a, _, _ in decision[channel])
                if shown not in staged:
                    last = (renders[shown], self.published(renders[shown], like=last))
                    staged[shown] = save_stripped_jpeg(last[1], staging, f"render{len(staged)}")
                    plan[channel] = str(staged[shown])
                else:
                    plan[channel] = str(staged_copy(staged[shown], staging / f"{channel}.jpg"))
            status, reason = "cleared", None
        else:
            # The candidate for review shows only faces shown on every channel, so releasing it
            # anywhere is safe.
            common = tuple(all(decision[c][i][0] == SHOWN for c in channels) for i in range(len(faces)))
            candidate = renders.get(common)
            if candidate is None:
                candidate = self.render(rgb, faces, common, seed)
            # Review copies hold faces no person has looked at yet: owner-only.
            plan = {"review": str(save_stripped_jpeg(self.published(candidate), staging, "review", mode=0o600))}
            status, reason = "review", f"{problem}; look at it before releasing"

        with transaction(self.conn):  # audit + plan, all or nothing
            self.conn.execute("DELETE FROM faces WHERE photo_sha256 = ?", (sha,))
            self.conn.execute("DELETE FROM face_actions WHERE photo_sha256 = ?", (sha,))
            for i, (face, ident) in enumerate(zip(faces, identities)):
                self.conn.execute(
                    "INSERT INTO faces (photo_sha256, idx, box, score, child_id, distance, reason, asked_about, "
                    "landmarks) VALUES (?,?,?,?,?,?,?,?,?)",
                    (sha, i, json.dumps(list(face.box)), float(face.score), ident.child_id, ident.distance, ident.reason,
                     asked.get(i), landmarks_json(face)))
                for channel in channels:
                    action, why, consent = decision[channel][i]
                    self.conn.execute(
                        "INSERT INTO face_actions (photo_sha256, face_idx, channel, action, reason, consent) VALUES (?,?,?,?,?,?)",
                        (sha, i, channel, action, why, _consent_json(consent)))
            folder, source_path = dropped or (drop_folder(snap.source.path, self.home.inbox).as_posix(),
                                              display_name(snap.source.path))
            self.conn.execute(
                "UPDATE photos SET state = 'publishing', outcome = ?, reason = ?, width = ?, height = ?, plan = ?, "
                "source = ?, source_path = ?, seed = ?, templates_used = ? WHERE sha256 = ?",
                (status, reason, width, height,
                 json.dumps({"stem": stem, "files": plan, "snapshot": str(snap.path), "source": snap.source.to_json(),
                             "folder": folder, "held_only_to_ask": held_only_to_ask}),
                 name, source_path, str(seed), len(self.templates), sha))
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
            # The outbox keeps the folders staff dropped the photo in (inbox/Room 2/x.jpg -> outbox/<channel>/
            # Room 2/x.jpg). Review stays one folder: its photos are named by file name alone, and a release
            # puts them in the same subfolder of the outbox.
            folder = (self.home.review if channel == "review"
                      else make_folders(self.home.outbox_for(channel), Path(plan.get("folder") or ".")))
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
            day_folder.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
            os.chmod(day_folder, PRIVATE_DIR)
            archive_rel = str((day_folder / safe_name(f"{sha[:12]}_{row['source']}")).relative_to(self.home.root))
            self.conn.execute("UPDATE photos SET archive_path = ? WHERE sha256 = ?", (archive_rel, sha))
        archived = self.home.root / archive_rel
        # The snapshot that was processed is what is archived; journals written before snapshots
        # existed name the dropped file itself.
        snapshot = plan.get("snapshot")
        place_durably(Path(snapshot) if snapshot else path, archived)
        if not os.path.lexists(archived):
            archive_rel = None  # the original vanished before it could be archived (someone moved it)
        if plan.get("source"):
            release_source(Source.from_json(plan["source"]), self.home.inbox)
        finished = now_iso()
        seconds = time.monotonic() - started
        from photoguard.flow.outbox import record_outbox_file

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
                    record_outbox_file(self.home, self.conn, sha, channel, self.home.root / rel,
                                       made=row["outcome"] or "processed", file_sha256=hashes[staged])
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

    def _event(self, kind: str, sha: str | None = None, child: str | None = None, detail: str | None = None) -> None:
        self.conn.execute("INSERT INTO events (at, kind, photo_sha256, child_id, detail) VALUES (?,?,?,?,?)",
                          (now_iso(), kind, sha, child, detail))


def _hash_if_there(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except FileNotFoundError:
        return None


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


# --- batches ----------------------------------------------------------------------------------------


# --- consent changes after photos were cleared ------------------------------------------------------
