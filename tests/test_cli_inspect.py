"""`tunesmith-cli inspect` and `preview`, run as a user would (through engine.cli.main)."""
from __future__ import annotations

import json

import pytest

from engine.cli import main
from tests.fixtures.make_fixtures import EXPECTED
from tests.fixtures.make_fixtures import HERE as FIXTURES


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("name,expected_format,rows", [
    ("alpaca_en_demo.json", "alpaca", 999), ("openai_messages.json", "messages", 8),
    ("sharegpt.json", "sharegpt", 8), ("sharegpt_with_system.json", "sharegpt", 1), ("text.json", "text", 8),
])
def test_inspect_json_on_real_files(capsys, shared_data, name, expected_format, rows):
    code, out, _ = run_cli(capsys, "inspect", shared_data / name, "--json")
    data = json.loads(out)
    assert code == 0
    assert (data["format"], data["rows_total"], data["rows_valid"], data["rejected"]) == (expected_format, rows,
                                                                                          rows, [])
    assert isinstance(data["columns"], list) and data["token_stats"] is None


@pytest.mark.parametrize("name, layout, rows, mapping", EXPECTED, ids=[row[0] for row in EXPECTED])
def test_inspect_json_on_the_projects_own_files(capsys, name, layout, rows, mapping):
    maps = [f"{column}={role}" for column, role in (mapping or {}).items()]
    code, out, _ = run_cli(capsys, "inspect", FIXTURES / name, "--json", *[arg for m in maps for arg in ("--map", m)])
    data = json.loads(out)
    assert code == 0
    assert (data["format"], data["rows_total"], data["rows_valid"], data["rejected"]) == (layout, rows, rows, [])


def test_inspect_custom_columns_needs_map(capsys, shared_data):
    path = shared_data / "instruct_response_custom_columns.json"
    code, out, err = run_cli(capsys, "inspect", path)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "--map response=output" in err and "found: instruction, response" in err
    code, out, _ = run_cli(capsys, "inspect", path, "--map", "instruction=instruction", "--map", "response=output",
                           "--json")
    assert code == 0 and json.loads(out)["rows_valid"] == 2


def test_inspect_text_lists_rejections_counts_and_warnings(capsys, tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": ""}, {"prompt": "d"},
            {"prompt": "e", "completion": " "}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    code, out, _ = run_cli(capsys, "inspect", path)
    assert code == 0
    assert "format: prompt_completion (jsonl)" in out and "4 total, 1 usable, 3 rejected" in out
    assert "row 2: empty answer (field 'completion')" in out and "row 3: missing field 'completion'" in out
    assert "     2  empty answer" in out
    assert "Only 1 usable example." in out


def test_inspect_bad_file_is_one_clear_line(capsys, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": \n')
    code, out, err = run_cli(capsys, "inspect", path, "--json")
    assert code == 2 and out == ""
    assert err == f"error: {path}: line 2 is not valid JSON (Expecting value at column 10). Fix or remove that " \
                  "line; JSONL needs one complete object per line.\n"


def test_inspect_with_model_measures_tokens(capsys, tiny_model_dir):
    code, out, _ = run_cli(capsys, "inspect", FIXTURES / "sharegpt.jsonl", "--model", tiny_model_dir,
                           "--max-length", 40, "--json")
    stats = json.loads(out)["token_stats"]
    assert code == 0 and stats["count"] == 5 and stats["min"] <= stats["median"] <= stats["p95"] <= stats["max"]
    assert stats["max_length"] == 40 and stats["over_limit"] == len(stats["over_limit_rows"]) > 0


def test_preview_json_marks_learned_tokens(capsys, tiny_model_dir):
    code, out, _ = run_cli(capsys, "preview", FIXTURES / "sharegpt.jsonl", "--model", tiny_model_dir,
                           "--row", 5, "--json")
    data = json.loads(out)
    assert code == 0 and data["row"] == 5 and data["template"] == "model"
    learned = "".join(p["text"] for p in data["pieces"] if p["trained"])
    assert learned == "Only bread, from seven until it sells out.<|im_end|>Rye on Saturdays only.<|im_end|>"
    assert data["trained_tokens"] == sum(p["trained"] for p in data["pieces"]) and not data["truncated"]
    assert data["stats"]["count"] == 5


def test_preview_text_output_brackets_learned_text_without_colour(capsys, tiny_model_dir):
    code, out, _ = run_cli(capsys, "preview", FIXTURES / "messages.json", "--model", tiny_model_dir,
                           "--row", 2, "--max-length", 80)
    assert code == 0
    assert "[[learned]] text is learned" in out
    assert "<|im_start|>assistant\n[[" in out
    assert "cut from" in out and "longer than 80:" in out


def test_preview_rejected_or_missing_row(capsys, tmp_path, tiny_model_dir):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"text": "fine"}, {"text": ""}]), encoding="utf-8")
    code, _, err = run_cli(capsys, "preview", path, "--model", tiny_model_dir, "--row", 2)
    assert code == 2 and "row 2 cannot be used: empty text" in err
    code, _, err = run_cli(capsys, "preview", path, "--model", tiny_model_dir, "--row", 9)
    assert code == 2 and "choose --row between 1 and 2" in err


def test_preview_on_starter_model(capsys, starter_model_dir):
    code, out, _ = run_cli(capsys, "preview", FIXTURES / "alpaca.json", "--model", starter_model_dir,
                           "--row", 2, "--max-length", 24, "--json")
    data = json.loads(out)
    assert code == 0 and data["truncated"] and data["tokens"] == 24 and data["full_length"] > 24
    assert data["pieces"][0] == {"text": "<|im_start|>", "trained": False}
