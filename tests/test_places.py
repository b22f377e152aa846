"""Places in a photo in words."""

import pytest

from photoguard.photos.places import where_in_photo


def test_the_nine_places():
    w, h = 900, 600
    assert where_in_photo((0, 0, 100, 100), w, h) == "top left"
    assert where_in_photo((400, 10, 500, 110), w, h) == "top centre"
    assert where_in_photo((800, 0, 900, 100), w, h) == "top right"
    assert where_in_photo((10, 250, 110, 350), w, h) == "middle left"
    assert where_in_photo((400, 250, 500, 350), w, h) == "middle"
    assert where_in_photo((800, 250, 900, 350), w, h) == "middle right"
    assert where_in_photo((0, 500, 100, 600), w, h) == "bottom left"
    assert where_in_photo((400, 500, 500, 600), w, h) == "bottom centre"
    assert where_in_photo((850, 550, 900, 600), w, h) == "bottom right"


def test_boxes_reaching_outside_the_photo_still_have_a_place():
    assert where_in_photo((-50, -50, 10, 10), 300, 300) == "top left"
    assert where_in_photo((290, 290, 400, 400), 300, 300) == "bottom right"
    with pytest.raises(ValueError):
        where_in_photo((0, 0, 1, 1), 0, 10)


def test_second_look_problem_in_words():
    from photoguard.engine.detect import FaceBox
    from photoguard.flow.results import SecondLook

    assert SecondLook(900, 600, [], [(0, 0, 10, 10)], []).problem() is None
    look = SecondLook(900, 600, [FaceBox(10, 500, 80, 580, 0.9)], [(800, 0, 900, 90)], [(0, "ada")])
    assert look.problem() == ("a face the first look missed, bottom left; "
                              "the obscured face (top right) can still be recognised as ada")
