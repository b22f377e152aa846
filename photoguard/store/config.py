"""Settings from ``photoguard.toml`` in the home, with defaults and where each value came from."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

SETTINGS_FILE = "photoguard.toml"
CHANNEL_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


class ConfigError(Exception):
    """A setting is unknown or has a bad value; the message names the key and the file."""


@dataclass(frozen=True)
class Settings:
    channels: tuple[str, ...] = ("facebook", "instagram", "twitter")
    # A face is a child only if its SFace cosine similarity to the child's nearest reference is at
    # least match_similarity AND the next child scores at least match_margin less. Calibrated on
    # children (README, "How faces are matched"), not adults; `photoguard calibrate` fits it to a roster.
    match_similarity: float = 0.60
    match_margin: float = 0.05
    # A face not sure enough to show, but at least this alike to a child whose consent would show it
    # somewhere today, holds the photo in review with the question "is this <child>?" instead of being
    # obscured without asking. 1 = never ask. On children (README) about a third of consented children's
    # faces fall between 0.50 and 0.60, and 1-7 % of faces of children who are not enrolled.
    match_ask_from: float = 0.50
    # ... and only when the face is that child's much more than it is anyone's: its score for the child at
    # least this many standard deviations above its scores for the rest of the roster (0 = do not look).
    # On children (docs/measurements.md) this asked about strangers' photos 3 % of the time instead of 20 %,
    # with as many right questions.
    match_ask_standout: float = 2.5
    # Calibration target: the chance that a child who is not enrolled is shown as someone on the roster.
    match_max_false_show: float = 0.001
    # Faces narrower than this (pixels, in the oriented photo) are never identified.
    min_face_px: int = 80
    # CenterFace score threshold: low on purpose, over-obscuring is the safe error.
    detect_threshold: float = 0.3
    # Every face at least this wide (pixels of the original photo) is searched for at every photo size
    # (less where a published copy would show a smaller face at more than 12 px: detect.floor_px).
    detect_min_face_px: int = 20
    # Published copies (outbox, releases, review previews) are at most this many pixels on their long
    # side: with the floor above, a face too small to be found is too small to recognise once published.
    outbox_max_side: int = 2048
    obscure_method: str = "pixelate"  # "pixelate" (with noise) or "fill"
    obscure_grow: float = 1.3
    archive_retention_days: int = 30
    # Empty inbox subfolders PhotoGuard took photos from are removed after this many quiet minutes (0 = never).
    inbox_remove_empty_after_minutes: int = 10
    workers: int = 0  # 0 = number of cores
    # key -> "default" or the settings file that set it
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def worker_count(self) -> int:
        return self.workers or (os.cpu_count() or 1)


# toml path ("section.key" or "key") -> Settings attribute
_KEYS: dict[str, str] = {
    "channels": "channels",
    "match.similarity": "match_similarity",
    "match.margin": "match_margin",
    "match.ask_from": "match_ask_from",
    "match.ask_standout": "match_ask_standout",
    "match.max_false_show": "match_max_false_show",
    "match.min_face_px": "min_face_px",
    "detect.threshold": "detect_threshold",
    "detect.min_face_px": "detect_min_face_px",
    "outbox.max_side": "outbox_max_side",
    "obscure.method": "obscure_method",
    "obscure.grow": "obscure_grow",
    "archive.retention_days": "archive_retention_days",
    "inbox.remove_empty_after_minutes": "inbox_remove_empty_after_minutes",
    "workers": "workers",
}
_ATTR_TO_KEY = {v: k for k, v in _KEYS.items()}
# Settings of older versions that no longer mean anything, and why they are skipped.
_RETIRED: dict[str, str] = {
    "match.threshold": "a distance for the face model PhotoGuard used before SFace; not used any more "
                       "(run 'photoguard calibrate --apply' to set match.similarity)",
}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _check(key: str, value: Any, where: Path) -> Any:
    def bad(what: str) -> ConfigError:
        return ConfigError(f"{where}: '{key}' {what} (got {value!r}). Fix or remove that line.")

    if key == "channels":
        if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
            raise bad("must be a non-empty list of channel names like [\"facebook\", \"instagram\"]")
        names = [c.strip().lower() for c in value]
        for name in names:
            if not name or not set(name) <= CHANNEL_NAME_CHARS:
                raise bad("channel names may use only letters, digits, '-' and '_'")
        if len(set(names)) != len(names):
            raise bad("lists a channel twice")
        return tuple(names)
    if key == "match.max_false_show":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 0.1:
            raise bad("must be a small fraction above 0 and at most 0.1, e.g. 0.001 for 0.1 %")
        return float(value)
    if key in ("match.similarity", "match.margin", "match.ask_from", "detect.threshold"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise bad("must be a number between 0 and 1")
        return float(value)
    if key == "match.ask_standout":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10:
            raise bad("must be a number between 0 and 10 (0 = ask whatever the rest of the roster looks like)")
        return float(value)
    if key == "obscure.grow":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 3:
            raise bad("must be a number between 1 and 3")
        return float(value)
    if key == "obscure.method":
        if value not in ("pixelate", "fill"):
            raise bad("must be \"pixelate\" or \"fill\"")
        return value
    if key in ("match.min_face_px", "archive.retention_days", "workers", "inbox.remove_empty_after_minutes"):
        low = 1 if key == "match.min_face_px" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise bad(f"must be a whole number of at least {low}")
        return value
    if key == "detect.min_face_px":
        # Below 12 px CenterFace finds nothing; above 64 px a recognisable face could go unsearched.
        if isinstance(value, bool) or not isinstance(value, int) or not 12 <= value <= 64:
            raise bad("must be a whole number of pixels from 12 to 64")
        return value
    if key == "outbox.max_side":
        if isinstance(value, bool) or not isinstance(value, int) or not 512 <= value <= 16384:
            raise bad("must be a whole number of pixels from 512 to 16384")
        return value
    raise AssertionError(key)


def load_settings(home: Path) -> Settings:
    """Read ``home/photoguard.toml`` (if present) over the defaults."""
    path = Path(home) / SETTINGS_FILE
    sources = {key: "default" for key in _KEYS}
    if not path.exists():
        return Settings(sources=sources)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}). Fix the file or delete it to use defaults.")
    values: dict[str, Any] = {}
    for key, value in _flatten(data).items():
        if key in _RETIRED:
            sources[key] = f"ignored: {_RETIRED[key]}"
            continue
        if key not in _KEYS:
            known = ", ".join(sorted(_KEYS))
            raise ConfigError(f"{path}: unknown setting '{key}'. Known settings: {known}.")
        values[_KEYS[key]] = _check(key, value, path)
        sources[key] = str(path)
    return Settings(**values, sources=sources)


def effective_settings(settings: Settings) -> list[tuple[str, Any, str]]:
    """(toml key, value, source) for every setting, for ``photoguard config``."""
    rows = []
    for f in fields(Settings):
        if f.name == "sources":
            continue
        key = _ATTR_TO_KEY[f.name]
        value = getattr(settings, f.name)
        rows.append((key, list(value) if isinstance(value, tuple) else value, settings.sources.get(key, "default")))
    return rows


def write_setting(home: Path, key: str, value: float | int | str) -> Path:
    """Set one ``section.key`` in photoguard.toml, keeping the other lines (used by calibrate --apply)."""
    if key not in _KEYS:
        raise ConfigError(f"unknown setting '{key}'")
    path = Path(home) / SETTINGS_FILE
    _check(key, value, path)
    section, _, name = key.rpartition(".")
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    rendered = f"{name} = {value!r}" if not isinstance(value, str) else f'{name} = "{value}"'
    current = ""
    insert_at = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            current = stripped[1:-1].strip()
            if current == section:
                insert_at = i + 1
            continue
        if current == section and stripped.split("=")[0].strip() == name:
            lines[i] = rendered
            break
    else:
        if insert_at is not None:
            lines.insert(insert_at, rendered)
        elif section:
            lines += ["", f"[{section}]", rendered]
        else:
            lines.insert(0, rendered)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    load_settings(home)  # the file must still be valid
    return path
