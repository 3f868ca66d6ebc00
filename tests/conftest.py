"""Shared fixtures: an isolated data folder, a tiny offline model, and the real starter model."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TUNESMITH_CALIBRATE", "0")  # no background speed measurement in window tests

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data" / "formats"


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The user's real data folder, where `make test` prepared the starter model."""
    import platformdirs

    return Path(platformdirs.user_data_dir("tunesmith", appauthor=False))


@pytest.fixture(autouse=True)
def tunesmith_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test writes models and runs into its own folder, never the user's."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("TUNESMITH_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    """Where tests save pictures of the window: $TUNESMITH_SCREENSHOTS when set, else a temporary folder.

    Never docs/screenshots: the README shows a real run there (docs/make_screenshots.py), not test fakes.
    """
    wanted = os.environ.get("TUNESMITH_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer, width-64 Llama with a 512-token BPE tokenizer and a ChatML template."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_base_model_dir(tmp_path_factory) -> Path:
    """The same tiny model without a chat template (a 'base' model)."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama-base"), chat_template=False)


@pytest.fixture(scope="session")
def starter_model_dir(real_data_dir) -> Path:
    """The real SmolLM2-135M-Instruct folder (prepared by `make test` through `tunesmith-cli setup`)."""
    folder = real_data_dir / "models" / "smollm2-135m-instruct"
    if not (folder / "tunesmith-model.json").is_file():
        from engine import models

        old = os.environ.pop("TUNESMITH_HOME", None)
        try:
            folder = models.prepare_starter()
        finally:
            if old is not None:
                os.environ["TUNESMITH_HOME"] = old
    return folder


@pytest.fixture
def starter_in_home(starter_model_dir, tunesmith_home) -> Path:
    """Make the real starter model visible inside the test's isolated data folder (a symlink)."""
    target = tunesmith_home / "models" / starter_model_dir.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(starter_model_dir, target_is_directory=True)
    return target


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def family_model_dir(tmp_path_factory):
    """A function: family name (tests/tiny_families.FAMILIES) -> the folder of its tiny model, built once."""
    from tests.tiny_families import build_family_model

    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = build_family_model(name, tmp_path_factory.mktemp(f"tiny-{name}"))
        return built[name]

    return get
