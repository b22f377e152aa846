"""A face as the database keeps it: its box, score and landmarks in a row of the faces table."""

from __future__ import annotations

import json
import sqlite3

from photoguard.engine.detect import FaceBox


def landmarks_json(face: FaceBox) -> str | None:
    """The face's landmarks as stored with it: every later picture of the photo obscures the same area."""
    return json.dumps([[round(x, 1), round(y, 1)] for x, y in face.landmarks]) if face.landmarks else None


def face_from_row(row: sqlite3.Row) -> FaceBox:
    """A face as stored in the ``faces`` table (box, score, landmarks)."""
    marks = json.loads(row["landmarks"]) if row["landmarks"] else None
    return FaceBox(*json.loads(row["box"]), score=row["score"] or 0.0,
                   landmarks=tuple((float(x), float(y)) for x, y in marks) if marks else None)
