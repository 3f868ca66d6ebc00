"""Evaluation: side-by-side chat (base and tuned from one model), before/after on held-out data,
and the general-ability probe for catastrophic forgetting.

Heavy libraries (torch, transformers, peft) are imported only when a model is loaded.
"""
from engine.evaluate.before_after import evaluate_run, load_results
from engine.evaluate.chat import ChatModel
from engine.evaluate.heldout import HeldOutExample, held_out_example
from engine.evaluate.report import export_report
from engine.evaluate.runfolder import EvaluationError, open_run
from engine.evaluate.settings import GenerationSettings

__all__ = ["ChatModel", "EvaluationError", "GenerationSettings", "HeldOutExample", "evaluate_run", "export_report",
           "held_out_example", "load_results", "open_run"]
