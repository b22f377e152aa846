"""Face numbers on the review photo never cover each other and stay inside the photo."""

from __future__ import annotations

from photoguard.web.labels import label_spots


def areas(spots, numbers):
    return [(s.x, s.y - s.size, s.x + int(s.size * 0.62 * len(str(n))) + 2, s.y) for s, n in zip(spots, numbers)]


def overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_numbers_of_faces_side_by_side_do_not_cover_each_other():
    # Grace's face and a small box on the flag beside her (the first-day walk: "2" and "3" on top of each other).
    boxes = [(100, 300, 260, 480), (420, 200, 560, 360), (425, 185, 440, 200)]
    spots = label_spots(boxes, [1, 2, 3], 800, 600)
    placed = areas(spots, [1, 2, 3])
    assert not any(overlap(a, b) for i, a in enumerate(placed) for b in placed[i + 1:])
    assert all(0 <= a[0] and 0 <= a[1] and a[2] <= 800 and a[3] <= 600 for a in placed)


def test_a_face_at_the_top_edge_has_its_number_below_or_inside():
    [spot] = label_spots([(50, 0, 200, 150)], [1], 800, 600)
    assert spot.y - spot.size >= 0


def test_many_faces_in_a_row_each_keep_a_readable_number():
    boxes = [(10 + 40 * i, 100, 45 + 40 * i, 135) for i in range(12)]
    spots = label_spots(boxes, list(range(1, 13)), 600, 400)
    assert len(spots) == 12 and all(s.size >= 28 for s in spots)
