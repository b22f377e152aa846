"""Measuring PhotoGuard on folders of faces: detection, identity, rosters and calibration."""
