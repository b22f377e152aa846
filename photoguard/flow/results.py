"""What processing a photo gives: per face and per photo, for the watcher, the CLI and the audit."""

from __future__ import annotations

import errno
from dataclasses import asdict, dataclass, field

from photoguard.engine.detect import FaceBox
from photoguard.photos.places import where_in_photo
from photoguard.rules.decide import SHOWN

PRIVATE_DIR = 0o700


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


# The second look at an output only counts confident new faces: the first look (at the low detection
# threshold) is what finds faces; near-threshold specks that appear only once nearby faces are
# pixelated are artefacts of the obscuring, and would send most group photos to review.
SECOND_LOOK_SCORE = 0.5


class DiskFull(OSError):
    """The home's disk is full: processing stops, nothing is lost, photos wait in the inbox."""


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


@dataclass
class SecondLook:
    """What a second look at a finished picture found."""
    width: int
    height: int
    missed: list[FaceBox]                  # faces the first look did not find (not obscured in that picture)
    boxes: list[tuple[int, int, int, int]]  # the faces the picture was made with, to name them
    recognisable: list[tuple[int, str]]    # (face index, child) obscured but still recognisable

    def problem(self) -> str | None:
        """Why the picture is not safe, in words with places, or None."""
        parts = [f"a face the first look missed, {where_in_photo(f.box, self.width, self.height)}"
                 for f in self.missed]
        parts += [f"the obscured face ({where_in_photo(self.boxes[i], self.width, self.height)}) can still be "
                  f"recognised as {child}" for i, child in self.recognisable]
        return "; ".join(parts) or None
