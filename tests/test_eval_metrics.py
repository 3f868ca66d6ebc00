"""Task metrics, the probe file and its strict grading, and the PNG chart: no model needed."""
from __future__ import annotations

import struct
import zlib

import pytest

from engine.evaluate import metrics
from engine.evaluate.probe import ProbeItem, load_probe


def test_exact_match_ignores_case_spacing_and_final_full_stop():
    assert metrics.exact_match("  Paris. ", "paris") == 1.0
    assert metrics.exact_match("The capital is Paris", "Paris") == 0.0


def test_rouge_l_is_the_lcs_f_measure():
    # LCS of "the cat sat on the mat" and "the cat lay on the mat" is 5 words of 6 each: P = R = F = 5/6.
    assert metrics.rouge_l("the cat sat on the mat", "The cat lay on the mat.") == pytest.approx(100 * 5 / 6)
    assert metrics.rouge_l("a b c", "c b a") == pytest.approx(100 / 3)
    assert metrics.rouge_l("", "anything") == 0.0


def test_chrf_is_100_for_identical_and_low_for_unrelated():
    assert metrics.chrf("The secret word is pineapple.", "The secret word is pineapple.") == pytest.approx(100.0)
    assert metrics.chrf("zzzz qqqq", "The secret word is pineapple.") < 10


def test_summarise_means_each_metric():
    summary = metrics.summarise([metrics.score_answer("tac", "tac"), metrics.score_answer("dog", "tac")])
    assert summary["exact_match"] == 0.5
    assert metrics.summarise([]) == {}


def test_probe_file_covers_the_promised_skills():
    probe = load_probe()
    assert len(probe.items) >= 30
    assert {"arithmetic", "capitals", "opposites", "spelling", "facts", "format"} <= {i.category for i in probe.items}
    assert len(probe.text.split()) > 80
    assert all(item.answers and item.prompt for item in probe.items)


def test_probe_grading_is_strict():
    item = ProbeItem(category="arithmetic", prompt="2+2?", answers=("4", "four"))
    assert item.is_right("4") and item.is_right("Four!") and item.is_right("**4**") and item.is_right('"4."')
    assert not item.is_right("The answer is 4.")  # rambling towards the answer does not count
    assert not item.is_right("14") and not item.is_right("fourteen") and not item.is_right("44")
    planet = ProbeItem(category="facts", prompt="Which planet do we live on?", answers=("Earth",),
                       patterns=(r"(we live on )?(the )?(planet )?earth\b",))
    assert planet.is_right("Earth.") and planet.is_right("We live on planet Earth.")
    assert not planet.is_right("Kepler-41B") and not planet.is_right("Mars, not Earth")
    shout = ProbeItem(category="format", prompt="caps", answers=("CAT",), case_sensitive=True)
    assert shout.is_right("CAT") and not shout.is_right("cat")


def test_every_probe_pattern_compiles_and_accepts_its_own_answer():
    for item in load_probe().items:
        assert item.is_right(item.answers[0]), item.prompt


def _decode_png(data: bytes) -> tuple[int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    at, idat = 8, b""
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length:at + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IDAT":
            idat += body
        at += 12 + length
    return width, height, zlib.decompress(idat)


def test_loss_chart_is_a_valid_png_with_both_colours():
    from engine.evaluate.plot import TRAIN_COLOR, VAL_COLOR, loss_chart

    png = loss_chart([([(1, 3.0), (2, 2.0), (3, 1.5)], TRAIN_COLOR), ([(3, 2.5)], VAL_COLOR)], width=200, height=100)
    width, height, raw = _decode_png(png)
    assert (width, height) == (200, 100) and len(raw) == height * (1 + 3 * width)
    assert bytes(TRAIN_COLOR) in raw and bytes(VAL_COLOR) in raw
