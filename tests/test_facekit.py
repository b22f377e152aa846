import io

import numpy as np
from facekit import face_patch, jpeg_bytes, scene
from PIL import Image, ImageOps


def test_jpeg_bytes_displays_as_given_in_every_orientation():
    rgb, _ = scene(120, 80, [])
    rgb[:10, :20] = 0  # a dark corner to tell orientations apart
    for orientation in range(1, 9):
        with Image.open(io.BytesIO(jpeg_bytes(rgb, orientation))) as im:
            shown = np.asarray(ImageOps.exif_transpose(im))
        assert shown.shape == rgb.shape
        assert shown[:10, :20].mean() < 40, orientation


def test_face_patch_scales_face():
    patch = face_patch("hopper", 50)
    left, top, right, bottom = patch.face
    assert abs((right - left) - 50) <= 1
