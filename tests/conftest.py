import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def web_template(tmp_path_factory) -> Path:
    """A processed home built once per test run; tests copy it (webhome.copy)."""
    import webhome

    root = tmp_path_factory.mktemp("webhome") / "home"
    webhome.build(root)
    return root
