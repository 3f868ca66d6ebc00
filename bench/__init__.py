"""The performance race: Tunesmith's engine against a plain transformers + PEFT script (see BENCHMARKS.md)."""
