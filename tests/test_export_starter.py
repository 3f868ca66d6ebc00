"""The real starter model (SmolLM2-135M-Instruct): merge a run and write GGUF f16 that reads back.

The adapter is PEFT's zero-initialised LoRA (no training needed), so the merged model equals the
starter model; the check is the GGUF writer on a real 30-layer vocabulary-49k Llama with grouped
query attention (9 query heads, 3 key/value heads) and the SmolLM2 tokenizer and chat template.
"""
from __future__ import annotations

import json
import os

import pytest

from engine.export import GGUF_TOLERANCES, export_run
from tests.export_runs import make_lora_run


# About 75 s of CPU (most of it transformers reading the 49k-token vocabulary back three times),
# too slow for every `make test`; opt in with TUNESMITH_EXPORT_STARTER=1.
@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TUNESMITH_EXPORT_STARTER"),
                    reason="real-model GGUF round trip: set TUNESMITH_EXPORT_STARTER=1 to run it")
def test_starter_run_exports_to_gguf_f16_that_matches_the_merged_model(starter_model_dir, tmp_path):
    run = make_lora_run(tmp_path / "starter-run", starter_model_dir, zero=True)

    path = export_run(run, "gguf-f16", tmp_path / "gguf")  # verification is on for a model this size

    result = json.loads((path.parent / "tunesmith-export.json").read_text())["verification"]
    assert result["passed"] and result["tokens_match"] and result["template_match"]
    assert result["relative_diff"] <= GGUF_TOLERANCES["gguf-f16"]
    assert result["top1_agreement"] == 1.0
    assert 250e6 < path.stat().st_size < 300e6  # 135M parameters at 2 bytes, norms at 4
    modelfile = (path.parent / "Modelfile").read_text()
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""' in modelfile
