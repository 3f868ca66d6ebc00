"""The engine helper process: answers in plain data, says errors in plain words, survives its own death."""
from __future__ import annotations

import os
import signal

import pytest

from engine.data.formats import Example
from gui.engine_helper import EngineHelper, HelperError

EXAMPLE = Example(row=3, messages=[{"role": "user", "content": "Is it raining?"},
                                   {"role": "assistant", "content": "Yes, bring a coat."}])


@pytest.fixture
def helper():
    engine_helper = EngineHelper()
    yield engine_helper
    engine_helper.shutdown()


def test_a_preview_comes_back_as_plain_data(helper, tiny_model_dir):
    preview = helper.call("render_preview", EXAMPLE.to_dict(), str(tiny_model_dir), "auto", 512, False, "",
                          lane="preview")
    assert preview["row"] == 3 and preview["tokens"] > 0 and not preview["truncated"]
    learned = "".join(piece["text"] for piece in preview["pieces"] if piece["trained"])
    assert "Yes, bring a coat." in learned and "Is it raining?" not in learned
    assert all(type(piece) is dict for piece in preview["pieces"])  # no tokenizer or tensor crossed over


def test_a_users_mistake_comes_back_in_plain_words(helper, tmp_path):
    with pytest.raises(HelperError, match="deleted-model"):
        helper.call("render_preview", EXAMPLE.to_dict(), str(tmp_path / "deleted-model"), "auto", 512, False, "")
    with pytest.raises(HelperError, match="Something went wrong \\(KeyError\\)"):
        helper.call("no_such_job")  # only the listed jobs can be asked for


def test_progress_is_passed_on_while_a_job_works(helper):
    said = []
    with pytest.raises(HelperError):  # offline (HF_HUB_OFFLINE): the download itself fails
        helper.call("resolve_model", "someone/some-model", lane="model",
                    progress=lambda message, fraction: said.append((message, fraction)))
    assert said and said[0][0].startswith("Downloading someone/some-model")


@pytest.mark.slow
def test_a_helper_that_died_is_replaced_on_the_next_request(helper, tiny_model_dir):
    args = (EXAMPLE.to_dict(), str(tiny_model_dir), "auto", 512, False, "")
    first = helper.call("render_preview", *args)
    old_pid = helper.pid
    os.kill(old_pid, signal.SIGKILL)  # as the out-of-memory killer would
    assert helper.call("render_preview", *args) == first
    new_pid = helper.pid
    assert new_pid not in (None, old_pid)
    helper.shutdown()  # the window closes: the helper ends with it
    assert helper.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(new_pid, 0)
