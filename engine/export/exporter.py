"""`export_run`: a finished run as an adapter folder, a merged model folder, or a GGUF file.

Every target is written into a staging folder beside the destination and renamed into place at
the end (engine.export.staging), so a failed or interrupted export leaves nothing behind.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from engine import remote_code
from engine.export import merge, staging
from engine.export.errors import ExportError, Progress, report
from engine.export.gguf_families import family_for
from engine.export.gguf_tensors import GGUF_FORMATS
from engine.export.run_folder import RunSource, read_run, run_notices

EXPORT_TARGETS = ("adapter", "merged", "gguf-f16", "gguf-q8_0")
# Read-back verification holds the merged model and the dequantized GGUF copy in memory at once;
# above this size the default is to skip it rather than risk running out of memory.
VERIFY_MAX_PARAMETERS = 2_000_000_000
EXPORT_INFO = staging.EXPORT_INFO


def export_run(run_dir: str | Path, to: str, out: str | Path, progress: Optional[Progress] = None, *,
               overwrite: bool = False, verify: Optional[bool] = None) -> Path:
    """Export the run in `run_dir` as `to` (one of EXPORT_TARGETS) at `out`; returns the exported path.

    adapter and merged write a folder at `out`. GGUF targets write `out` itself when it ends in
    .gguf, with an Ollama `Modelfile` beside it; otherwise a folder `out` holding both.
    `progress(message, fraction)` hears every step, including notices (e.g. a QLoRA run merged into
    the full-precision base); an exception it raises aborts the export cleanly. `verify` (GGUF
    only) reads the file back and compares logits with the merged model; None verifies models up
    to VERIFY_MAX_PARAMETERS. An existing non-empty destination is refused unless `overwrite`.
    """
    if to not in EXPORT_TARGETS:
        raise ExportError(f"Unknown export target '{to}'. Choose one of: {', '.join(EXPORT_TARGETS)}.")
    source = read_run(run_dir)
    with remote_code.allowed(source.trust_remote_code):
        return _export(source, to, Path(out).expanduser().resolve(), progress, overwrite, verify)


def _export(source: RunSource, to: str, out: Path, progress, overwrite: bool, verify: Optional[bool]) -> Path:
    report(progress, f"Exporting {source.name} as {to}", 0.0)
    if to == "adapter":
        return _export_adapter(source, out, progress, overwrite)
    merge.check_mergeable(source)
    if to == "merged":
        return _export_merged(source, out, progress, overwrite)
    return _export_gguf(source, to, out, progress, overwrite, verify)


def _notify(progress: Optional[Progress], notices: list[str], fraction: float) -> None:
    for notice in notices:
        report(progress, f"Note: {notice}", fraction)


def _write_info(folder: Path, source: RunSource, to: str, notices: list[str], extra: Optional[dict] = None) -> None:
    """A small record beside the export: where it came from and what the user was told."""
    info = {"run_dir": str(source.run_dir), "method": source.method, "target": to,
            "base_model_path": str(source.base_model_path), "notices": notices} | (extra or {})
    (folder / EXPORT_INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")


def _export_adapter(source: RunSource, out: Path, progress, overwrite: bool) -> Path:
    staging.check_destination(out, overwrite=overwrite)
    needed = merge.folder_bytes(source.adapter_dir) + merge.folder_bytes(source.tokenizer_dir)
    staging.check_free_space(staging.existing_parent(out), needed)
    notices = run_notices(source)
    _notify(progress, notices, 0.05)
    with staging.staging_folder(out) as work:
        report(progress, "Copying the adapter and the tokenizer", 0.3)
        merge.write_adapter(source, work)
        _write_info(work, source, "adapter", notices)
        report(progress, "Adapter exported", 1.0)
        return staging.publish_folder(work, out)


def _export_merged(source: RunSource, out: Path, progress, overwrite: bool) -> Path:
    staging.check_destination(out, overwrite=overwrite)
    weights_from = source.model_dir if source.is_full else source.base_model_path
    # The merged model has the base's shapes and precision, so its weight files are the estimate.
    weight_files = list(weights_from.glob("*.safetensors")) or list(weights_from.glob("*.bin"))
    needed = sum(f.stat().st_size for f in weight_files) + merge.folder_bytes(source.tokenizer_dir)
    staging.check_free_space(staging.existing_parent(out), needed)
    notices = run_notices(source) + merge.merge_notices(source)
    _notify(progress, notices, 0.05)
    with staging.staging_folder(out) as work:
        report(progress, merge.loading_message(source), 0.1)
        model = merge.load_merged_model(source)
        report(progress, "Saving the merged model", 0.5)
        merge.write_merged(model, source, work)
        _write_info(work, source, "merged", notices)
        report(progress, "Merged model exported", 1.0)
        return staging.publish_folder(work, out)


def _gguf_layout(source: RunSource, to: str, out: Path) -> tuple[Path, Path, str]:
    """(folder the files end up in, the path returned, the .gguf file name)."""
    if out.suffix.lower() == ".gguf":
        return out.parent, out, out.name
    name = f"{source.name}-{GGUF_FORMATS[to].lower()}.gguf"
    return out, out / name, name


def _export_gguf(source: RunSource, to: str, out: Path, progress, overwrite: bool,
                 verify: Optional[bool]) -> Path:
    from transformers import AutoConfig, AutoTokenizer

    from engine.export.gguf_file import estimate_gguf_bytes, write_gguf
    from engine.export.gguf_vocab import read_vocab, reader_rebuilds_split
    from engine.export.modelfile import modelfile_text

    # Refuse unsupported models and tokenizers before loading gigabytes of weights.
    config = AutoConfig.from_pretrained(str(source.model_dir if source.is_full else source.base_model_path),
                                        **remote_code.kwargs())
    family = family_for(config)
    vocab = read_vocab(source.tokenizer_dir, config.vocab_size)
    folder, gguf_path, gguf_name = _gguf_layout(source, to, out)
    single_file = gguf_path == out
    staging.check_destination(out, overwrite=overwrite, folder=not single_file)
    if single_file:
        staging.check_destination(folder / "Modelfile", overwrite=overwrite, folder=False)
    notices = (run_notices(source) + merge.merge_notices(source) + vocab.notices
               + [n for n in [family.notice(config)] if n])
    _notify(progress, notices, 0.02)
    with staging.staging_folder(out) as work:
        report(progress, merge.loading_message(source), 0.05)
        model = merge.load_merged_model(source)
        staging.check_free_space(work, estimate_gguf_bytes(model, to))
        tokenizer = AutoTokenizer.from_pretrained(str(source.tokenizer_dir))
        write_gguf(model, vocab, work / gguf_name, to, name=source.name, progress=progress, span=(0.2, 0.8))
        modelfile, modelfile_notices = modelfile_text(gguf_name, tokenizer)
        (work / "Modelfile").write_text(modelfile, encoding="utf-8")
        _notify(progress, modelfile_notices, 0.8)
        notices = notices + modelfile_notices
        result = _maybe_verify(work / gguf_name, model, tokenizer, to, verify, progress,
                               compare_tokenizer=reader_rebuilds_split(vocab.pre))
        if single_file:
            staging.publish_files(work, folder, [gguf_name, "Modelfile"])
        else:
            _write_info(work, source, to, notices, {"verification": result})
            staging.publish_folder(work, out)
        report(progress, f"GGUF file written: {gguf_path}", 1.0)
        return gguf_path


def _maybe_verify(path: Path, model, tokenizer, to: str, verify: Optional[bool], progress, *,
                  compare_tokenizer: bool) -> Optional[dict]:
    from engine.export.verify import verify_gguf

    parameters = sum(p.numel() for p in model.parameters())
    if verify is None:
        verify = parameters <= VERIFY_MAX_PARAMETERS
        if not verify:
            report(progress, "Note: the model is too large to check the GGUF file against it in memory; "
                             "skipping the read-back check.", 0.8)
    if not verify:
        return None
    report(progress, "Reading the GGUF file back and comparing it with the merged model", 0.85)
    result = verify_gguf(path, model, tokenizer, to, compare_tokenizer=compare_tokenizer)
    if not result.passed:
        raise ExportError(f"The GGUF file did not match the merged model ({result.summary()}). Nothing was "
                          "saved. This is a Tunesmith bug; please report it with the run folder.")
    report(progress, f"Checked: {result.summary()}", 0.99)
    return result.to_dict()
