"""`tunesmith-cli export` as a user types it."""
from __future__ import annotations

from engine.cli import main
from tests.export_runs import make_lora_run


def test_cli_exports_and_prints_the_path(tmp_path, tiny_model_dir, capsys):
    run = make_lora_run(tmp_path / "run", tiny_model_dir)

    code = main(["export", str(run), "--to", "gguf-q8_0", "--out", str(tmp_path / "bot.gguf"), "--no-verify"])

    out, err = capsys.readouterr()
    assert code == 0
    assert out.strip() == str(tmp_path / "bot.gguf") and (tmp_path / "bot.gguf").is_file()
    assert "[100%] GGUF file written" in err
    writes = [line for line in err.splitlines() if "] Writing " in line]
    assert 1 <= len(writes) <= 13, "tensor writes are shown in 5% steps over the 20-80% span, not one per tensor"


def test_cli_user_errors_are_one_line_without_traceback(tmp_path, capsys):
    code = main(["export", str(tmp_path / "no-such-run"), "--to", "merged", "--out", str(tmp_path / "m")])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "no such run folder" in err and "Traceback" not in err
