"""Faces in pixels: detect, describe (SFace), identify and obscure. Knows nothing of homes or consent."""
