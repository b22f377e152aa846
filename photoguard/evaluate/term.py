"""A simulated nursery term: how PhotoGuard does as the children's photos come in, batch after batch.

From a folder of ``<child>/`` photo folders with the age in the file name (FG-NET's ``001A05.JPG``), each
run draws a roster: a third never enrolled (strangers), the rest enrolled from their youngest usable
photos. Every other photo in the age range, of enrolled children and strangers alike, arrives in batches
in age order. Each face is shown by PhotoGuard itself (``match_faces``, the product rule), asked about
(``questions_to_ask``) or obscured. The manager answers every question honestly after the batch.

With learning on, the product's policy: a face the manager confirms as a child (a "yes", or "no, it is
X") joins that child's references if its score against the child's current references reaches
``ask_from``; a child keeps its enrolment photos plus the ``learned_cap`` newest learned faces, and matching
compares those taken within a year of her newest (``identify.recent_references``, the age in the file name
standing in for the date); a learned face counts from the next batch; PhotoGuard's own matches never teach.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from photoguard.engine.identify import Template, look_alike_pairs, match_faces, recent_references
from photoguard.evaluate.faces import EncodedPhoto
from photoguard.flow.learning import MAX_LEARNED
from photoguard.evaluate.rosters import photo_age
from photoguard.rules.consent import ChildConsent
from photoguard.rules.decide import questions_to_ask
from photoguard.store.config import Settings

CHANNEL = "photos"


class TermError(Exception):
    """The folder cannot make the term asked for; the message says why."""


@dataclass(frozen=True)
class MatchRule:
    """The product's matching settings."""
    similarity: float
    margin: float
    ask_from: float
    min_face_px: int
    ask_standout: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> MatchRule:
        return cls(settings.match_similarity, settings.match_margin, settings.match_ask_from,
                   settings.min_face_px, settings.match_ask_standout)


@dataclass(frozen=True)
class TermSetup:
    roster: int = 30
    batches: int = 3
    min_age: int = 0
    max_age: int = 6
    runs: int = 40
    seed: int = 0
    learning: bool = True
    enrol_photos: int = 2
    learned_cap: int = MAX_LEARNED   # the product's cap

    def __post_init__(self) -> None:
        if self.roster < 2:
            raise TermError("the roster needs at least 2 children (one enrolled, one stranger).")
        if self.batches < 1 or self.runs < 1 or self.enrol_photos < 1 or self.learned_cap < 0:
            raise TermError("batches, runs and enrolment photos must be at least 1, the cap at least 0.")
        if not 0 <= self.min_age <= self.max_age:
            raise TermError(f"ages {self.min_age}-{self.max_age} are not a range.")

    @property
    def strangers(self) -> int:
        return round(self.roster / 3)


@dataclass(frozen=True)
class TermPlan:
    """One run's roster and arrivals, fixed before any face is matched."""
    enrol: dict[str, list[EncodedPhoto]]      # enrolled child -> enrolment photos, youngest first
    strangers: list[str]
    batches: list[list[EncodedPhoto]]


@dataclass
class BatchCounts:
    photos: int = 0
    enrolled_faces: int = 0          # main faces of enrolled children's photos, >= min_face_px
    shown: int = 0                   # ... shown as themselves by PhotoGuard itself
    asked_right: int = 0             # ... asked about as themselves
    asked_wrong: int = 0             # ... asked about as another child
    stranger_photos: int = 0         # photos of children never enrolled
    stranger_photos_asked: int = 0   # ... whose main face was asked about
    other_faces_asked: int = 0       # every other face asked about: strangers and bystanders
    wrong: int = 0                   # faces shown as a child they are not (must be 0)
    learned: int = 0                 # references added after this batch

    @property
    def questions(self) -> int:
        return self.asked_right + self.asked_wrong + self.other_faces_asked

    def add(self, other: BatchCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True)
class Learned:
    batch: int       # 0-based: the batch whose answer taught it; it counts from the next batch
    child: str
    photo: str


@dataclass
class RunResult:
    enrolled: list[str]
    strangers: list[str]
    batches: list[BatchCounts] = field(default_factory=list)
    arrivals: list[list[str]] = field(default_factory=list)      # photo paths per batch, in order
    learned: list[Learned] = field(default_factory=list)
    references: dict[str, list[str]] = field(default_factory=dict)   # at the end: enrolment, then learned
    wrong_shows: list[str] = field(default_factory=list)

    @property
    def wrong(self) -> int:
        return sum(b.wrong for b in self.batches)


@dataclass
class TermResult:
    setup: TermSetup
    rule: MatchRule
    runs: list[RunResult]
    enrolable: int      # children with enough usable photos in the range to be enrolled
    children: int       # children with any photo in the range

    def per_batch(self) -> list[BatchCounts]:
        out = [BatchCounts() for _ in range(self.setup.batches)]
        for run in self.runs:
            for total, counts in zip(out, run.batches):
                total.add(counts)
        return out

    def total(self) -> BatchCounts:
        out = BatchCounts()
        for counts in self.per_batch():
            out.add(counts)
        return out

    def worst_wrong(self, batch: int | None = None) -> int:
        """The most wrong shows in one run (in one batch of it, when ``batch`` is given)."""
        return max((run.wrong if batch is None else run.batches[batch].wrong for run in self.runs), default=0)


def usable(photo: EncodedPhoto, min_face_px: int) -> bool:
    """The photo's main face can be a reference: measured and wide enough to be identified."""
    i = photo.main
    return i is not None and photo.encodings[i] is not None and photo.faces[i].width >= min_face_px


def photos_in_range(photos: Sequence[EncodedPhoto], min_age: int, max_age: int) -> dict[str, list[EncodedPhoto]]:
    """Each child's photos within the ages, youngest first (by name within an age)."""
    dated = [(age, p) for p in photos if (age := photo_age(p.path)) is not None and min_age <= age <= max_age]
    by: dict[str, list[EncodedPhoto]] = {}
    for _, p in sorted(dated, key=lambda t: (t[0], Path(t[1].path).name)):
        by.setdefault(p.person, []).append(p)
    return by


def enrolable(by: dict[str, list[EncodedPhoto]], setup: TermSetup, min_face_px: int) -> list[str]:
    """Children with enough usable photos to enrol and at least one more to arrive during the term."""
    return sorted(c for c, ps in by.items()
                  if sum(usable(p, min_face_px) for p in ps) >= setup.enrol_photos and len(ps) > setup.enrol_photos)


def plan_term(by: dict[str, list[EncodedPhoto]], setup: TermSetup, min_face_px: int,
              rng: np.random.Generator) -> TermPlan:
    candidates = enrolable(by, setup, min_face_px)
    if not candidates:
        raise TermError(f"no child has {setup.enrol_photos + 1} photos at ages {setup.min_age}-{setup.max_age} "
                        f"with {setup.enrol_photos} usable faces to enrol from.")
    n_enrol = min(setup.roster - setup.strangers, len(candidates))
    enrolled = sorted(rng.choice(candidates, size=n_enrol, replace=False).tolist())
    others = sorted(c for c in by if c not in enrolled)
    strangers = sorted(rng.choice(others, size=min(setup.strangers, len(others)), replace=False).tolist())
    enrol: dict[str, list[EncodedPhoto]] = {}
    arriving: list[EncodedPhoto] = []
    for child in enrolled:
        enrol[child] = [p for p in by[child] if usable(p, min_face_px)][:setup.enrol_photos]
        arriving += [p for p in by[child] if not any(p is q for q in enrol[child])]
    for child in strangers:
        arriving += by[child]
    # Age order; within an age the order is random, so children of one age mix across batches.
    tiebreak = rng.permutation(len(arriving))
    order = sorted(range(len(arriving)), key=lambda i: (photo_age(arriving[i].path), tiebreak[i]))
    batches = [[arriving[i] for i in part] for part in np.array_split(np.array(order, dtype=int), setup.batches)]
    return TermPlan(enrol, strangers, batches)


@dataclass
class References:
    """One child's references: the enrolment photos and the newest learned faces, oldest first."""
    enrol: list[tuple[str, np.ndarray]]
    cap: int
    learned: list[tuple[str, np.ndarray]] = field(default_factory=list)

    def on_file(self) -> list[tuple[str, np.ndarray]]:
        return self.enrol + self.learned

    def kept(self) -> list[tuple[str, np.ndarray]]:
        """The references matching compares: the product's rule (``recent_references``), the age in the file
        name standing in for the day the photo was taken."""
        every = self.on_file()
        dated = [Template("", enc, _day_of(photo)) for photo, enc in every]
        recent = {id(t) for t in recent_references(dated)}
        return [ref for ref, t in zip(every, dated) if id(t) in recent]

    def matrix(self) -> np.ndarray:
        return np.stack([enc for _, enc in self.kept()])

    def score(self, encoding: np.ndarray) -> float:
        """The product's score: mean similarity to the references."""
        return float((self.matrix() @ encoding).mean())

    def learn(self, photo: str, encoding: np.ndarray) -> None:
        self.learned.append((photo, encoding))
        if len(self.learned) > self.cap:
            del self.learned[:len(self.learned) - self.cap]


def _day_of(photo: str) -> date | None:
    age = photo_age(Path(photo))
    return None if age is None else date(2000, 1, 1) + timedelta(days=365 * age)   # a year apart is 365 days


def _templates(refs: dict[str, References]) -> list[Template]:
    return [Template(child, enc) for child in sorted(refs) for _, enc in refs[child].kept()]


def _main_encoding(photo: EncodedPhoto) -> np.ndarray:
    return np.asarray(photo.encodings[photo.main], dtype=np.float64)


@dataclass(frozen=True)
class Answer:
    """A face the manager confirmed as ``child``."""
    child: str
    photo: str
    encoding: np.ndarray


@dataclass
class BatchOutcome:
    counts: BatchCounts = field(default_factory=BatchCounts)
    answers: list[Answer] = field(default_factory=list)
    wrong_shows: list[str] = field(default_factory=list)


def match_batch(batch: Sequence[EncodedPhoto], refs: dict[str, References], strangers: set[str], rule: MatchRule,
                today: date) -> BatchOutcome:
    """Every photo of one batch matched against the references as they stand, and the manager's
    confirmations."""
    templates = _templates(refs)
    confusable = look_alike_pairs(templates, rule.similarity)
    consents = {c: ChildConsent(c, c, True, {CHANNEL: True}) for c in refs}
    out = BatchOutcome()
    counts = out.counts
    for photo in batch:
        counts.photos += 1
        counts.stranger_photos += photo.person in strangers
        own = photo.person if photo.person in refs else None
        widths = [box.width for box in photo.faces]
        ids = match_faces(photo.encodings, widths, templates, threshold=rule.similarity, margin=rule.margin,
                          min_face_px=rule.min_face_px, confusable=confusable)
        for i, ident in enumerate(ids):
            mine = own is not None and i == photo.main
            if mine and widths[i] >= rule.min_face_px:
                counts.enrolled_faces += 1
                counts.shown += ident.child_id == own
            if ident.child_id is not None and not (mine and ident.child_id == own):
                counts.wrong += 1
                who = photo.person if i == photo.main else "a bystander"
                out.wrong_shows.append(f"{photo.path}: {who} shown as {ident.child_id} "
                                        f"(score {ident.similarity:.3f})")
        for q in questions_to_ask(ids, widths, consents, (CHANNEL,), today, ask_from=rule.ask_from,
                                  min_face_px=rule.min_face_px, ask_standout=rule.ask_standout):
            if own is None or q.face != photo.main:
                # A stranger or a bystander: the manager says "no", and nothing is learned.
                counts.other_faces_asked += 1
                counts.stranger_photos_asked += photo.person in strangers and q.face == photo.main
                continue
            if q.child_id == own:
                counts.asked_right += 1
            else:
                counts.asked_wrong += 1
            out.answers.append(Answer(own, str(photo.path), _main_encoding(photo)))
    return out


def run_term(plan: TermPlan, setup: TermSetup, rule: MatchRule, today: date | None = None) -> RunResult:
    today = today or date.today()
    refs = {c: References([(str(p.path), _main_encoding(p)) for p in ps], setup.learned_cap)
            for c, ps in plan.enrol.items()}
    run = RunResult(sorted(refs), sorted(plan.strangers))
    for b, batch in enumerate(plan.batches):
        outcome = match_batch(batch, refs, set(plan.strangers), rule, today)
        run.wrong_shows += outcome.wrong_shows
        if setup.learning:
            # Each answer is judged against the references this batch was matched with, so a face
            # learned now counts from the next batch.
            passed = [a for a in outcome.answers if refs[a.child].score(a.encoding) >= rule.ask_from]
            for a in passed:
                refs[a.child].learn(a.photo, a.encoding)
                run.learned.append(Learned(b, a.child, a.photo))
            outcome.counts.learned = len(passed)
        run.batches.append(outcome.counts)
        run.arrivals.append([str(p.path) for p in batch])
    run.references = {c: [photo for photo, _ in r.on_file()] for c, r in refs.items()}
    return run


def simulate_term(photos: Sequence[EncodedPhoto], setup: TermSetup, rule: MatchRule,
                  today: date | None = None) -> TermResult:
    """``setup.runs`` terms; run i draws from the seed (setup.seed, i), so learning on and off meet the
    same terms."""
    by = photos_in_range(photos, setup.min_age, setup.max_age)
    runs = [run_term(plan_term(by, setup, rule.min_face_px, np.random.default_rng([setup.seed, i])),
                     setup, rule, today)
            for i in range(setup.runs)]
    return TermResult(setup, rule, runs, len(enrolable(by, setup, rule.min_face_px)), len(by))
