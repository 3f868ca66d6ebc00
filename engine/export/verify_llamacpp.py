"""The GGUF file run by llama.cpp itself, where the optional llama-cpp-python package is installed.

transformers' GGUF reader (engine.export.verify) checks the tensors and the metadata it understands;
llama.cpp is the program users actually run the file with, so where it can be had it computes the
same prompts' next-token logits and tokenizes the same text. llama-cpp-python has no prebuilt wheel
for every C library, so it is an optional extra built from its source package (`pip install -e
".[llamacpp]"`); without it this check is skipped and the export says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except Exception:  # a wheel built for another C library fails at import with OSError, not ImportError
        return False
    return True


@dataclass
class LlamaCppRun:
    """llama.cpp's next-token logits for each prompt, and whether it tokenizes each text to the expected ids."""

    logits: list  # one numpy vector per prompt
    tokens_match: bool


def run_prompts(gguf_path: Path, prompts: list[list[int]], texts: list[tuple[str, list[int]]]) -> Optional[LlamaCppRun]:
    """Evaluate `prompts` (token ids) with llama.cpp; `texts` are (text, expected ids) to tokenize. None without llama.cpp."""
    if not available():
        return None
    import numpy as np
    from llama_cpp import Llama

    longest = max(len(ids) for ids in prompts)
    llm = Llama(model_path=str(gguf_path), n_ctx=max(64, longest + 8), n_batch=max(64, longest), logits_all=True,
                verbose=False, n_threads=1)
    try:
        logits = []
        for ids in prompts:
            llm.reset()
            llm.eval(ids)
            logits.append(np.array(llm.scores[len(ids) - 1], dtype=np.float32))
        tokens_match = all(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True) == expected
                           for text, expected in texts)
    finally:
        llm.close()
    return LlamaCppRun(logits, tokens_match)
