"""The window's process loads no torch, transformers, peft or bitsandbytes, even while it previews data,
estimates memory, plans and prepares the model: that work happens in the engine helper process."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_the_window_process_never_loads_the_ml_stack(tiny_model_dir, tunesmith_home):
    """Drives the Dataset view (chat data and preference pairs), the model picker, the hardware panel and
    the plan in a fresh process (tests/window_probe.py), then reads that process's sys.modules."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TUNESMITH_HOME=str(tunesmith_home))
    result = subprocess.run([sys.executable, "-m", "tests.window_probe", str(tiny_model_dir)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # Every feature really ran: its result is on screen.
    seen = report["seen"]
    assert '"item": "plant pot"' in seen["learned"]
    assert seen["memory"].startswith("✓ Needs about")
    assert seen["time"].startswith("Time on this computer: about")
    assert "Keeping general ability adds" in seen["keep_note"]
    assert seen["pair_chosen"]
    assert report["loaded"] == [], "imported in the window's process:\n" + "\n".join(report["first_import"].values())
