"""The Evaluation tab: chat with the base and the tuned model side by side, and see before/after numbers.

Choosing a run starts its chat worker (a child process that loads the model once and serves both
sides); tokens stream into the two panes. "Try a held-out example" fills the prompt with a
validation example the model never trained on and shows the reference answer beside the replies.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFrame, QHBoxLayout, QPlainTextEdit, QPushButton, QScrollArea,
                               QSplitter, QVBoxLayout, QWidget)

from engine.evaluate.heldout import HeldOutExample, split_example
from engine.evaluate.runfolder import EvaluationError, read_heldout
from gui import runs
from gui.chat_session import CHAT_TARGET, ChatSession
from gui.controller import Controller
from gui.style import label, view_header
from gui.widgets.before_after import EVAL_TARGET, BeforeAfterPanel
from gui.widgets.card import Card
from gui.widgets.chat_pane import ChatPane
from gui.widgets.export_dialog import ExportDialog
from gui.widgets.generation_settings import GenerationSettingsForm
from gui.widgets.preference_results import PreferenceResults


class EvaluationView(QWidget):
    """Signals: chatReady(): the chosen run's model is loaded; turnFinished(): both panes answered."""

    chatReady = Signal()
    turnFinished = Signal()

    def __init__(self, controller: Controller, parent: Optional[QWidget] = None, *, chat_target: str = CHAT_TARGET,
                 eval_target: str = EVAL_TARGET):
        super().__init__(parent)
        self.setObjectName("page")
        self.controller = controller
        self.chat_target = chat_target  # tests replace the workers with fakes
        self.session: Optional[ChatSession] = None
        self.run_dir = ""  # the run being compared ("" when none)
        self.held_out: Optional[HeldOutExample] = None
        self._histories: dict[str, list] = {"base": [], "tuned": []}
        self._random = random.Random()
        self._turn_problem = ""
        self._build(eval_target)
        controller.runSelected.connect(self.open_run)
        app = QCoreApplication.instance()
        if app is not None:  # the chat and eval workers must end with the application
            app.aboutToQuit.connect(self.shutdown)
        self.refresh_runs()

    # --- layout -----------------------------------------------------------------------------
    def _build(self, eval_target: str) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(20, 16, 20, 12)
        root.setSpacing(10)
        header, self.base_label = view_header("Evaluation",
                                              "Choose a trained run to compare it with the model it started from.")
        header.addWidget(label("Tuned run:", "subtitle", wrap=False))
        self.run_combo = QComboBox()
        self.run_combo.setMinimumWidth(320)
        self.run_combo.setToolTip("A finished (or stopped) training run. Its base model answers on the left, "
                                  "the tuned model on the right.")
        self.run_combo.activated.connect(lambda _index: self.open_run(self.run_combo.currentData() or ""))
        header.addWidget(self.run_combo)
        refresh = QPushButton("Refresh")
        refresh.setToolTip("Look again for runs in the data folder.")
        refresh.clicked.connect(self.refresh_runs)
        header.addWidget(refresh)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save the tuned model as a merged folder, a GGUF file for llama.cpp, "
                                      "LM Studio and Ollama, or the adapter alone.")
        self.export_button.clicked.connect(self.show_export_dialog)
        header.addWidget(self.export_button)
        root.addLayout(header)

        body = QHBoxLayout()
        chat_card = Card("Side-by-side chat", "One prompt, two answers: the same conversation goes to the base "
                                              "model and to the tuned model.")
        panes = QSplitter(Qt.Orientation.Horizontal)
        self.base_pane = ChatPane("Base model", "before fine-tuning")
        self.tuned_pane = ChatPane("Tuned model", "after fine-tuning")
        self.reference_pane = ChatPane("Reference answer", "from your held-out data")
        self.reference_pane.setVisible(False)
        for pane in (self.base_pane, self.tuned_pane, self.reference_pane):
            panes.addWidget(pane)
        chat_card.body.addWidget(panes, 1)
        self.chat_status = label("", "hint")
        chat_card.body.addWidget(self.chat_status)
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("Write a message for both models…")
        self.prompt.setMaximumHeight(72)
        chat_card.body.addWidget(self.prompt)
        buttons = QHBoxLayout()
        self.held_out_button = QPushButton("Try a held-out example")
        self.held_out_button.setToolTip("Fill the prompt with an example kept out of training, and show its "
                                        "reference answer beside the two replies.")
        self.held_out_button.clicked.connect(self.try_held_out_example)
        self.clear_button = QPushButton("Clear conversation")
        self.clear_button.setToolTip("Start a new conversation: both models forget the earlier turns.")
        self.clear_button.clicked.connect(self.clear_conversation)
        self.stop_button = QPushButton("Stop generating")
        self.stop_button.clicked.connect(self.stop_generating)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("primary")
        self.send_button.setToolTip("Both models answer; base first, then tuned.")
        self.send_button.clicked.connect(self.send)
        buttons.addWidget(self.held_out_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.send_button)
        chat_card.body.addLayout(buttons)
        body.addWidget(chat_card, 1)

        side = QVBoxLayout()
        self.before_after = BeforeAfterPanel(target=eval_target)
        side.addWidget(self.before_after)
        self.preference = PreferenceResults()
        self.before_after.resultsShown.connect(self.preference.show_results)
        side.addWidget(self.preference)
        settings_card = Card("Generation settings")
        self.settings = GenerationSettingsForm()
        settings_card.body.addWidget(self.settings)
        side.addWidget(settings_card)
        side.addStretch(1)
        side_widget = QWidget()
        side_widget.setObjectName("page")
        side_widget.setLayout(side)
        side.setContentsMargins(0, 0, 0, 0)
        # The side column scrolls rather than squeezing its cards when the numbers need more room.
        side_scroll = QScrollArea()
        side_scroll.setWidget(side_widget)
        side_scroll.setWidgetResizable(True)
        side_scroll.setFrameShape(QFrame.Shape.NoFrame)
        side_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        side_scroll.setFixedWidth(396)
        body.addWidget(side_scroll)
        root.addLayout(body, 1)
        self._update_buttons()

    # --- runs -------------------------------------------------------------------------------
    def refresh_runs(self) -> None:
        """List the runs that have a result to chat with; keep the current choice, else take the newest."""
        current = self.run_combo.currentData() or self.run_dir or self.controller.run_dir
        self.run_combo.clear()
        for summary in runs.list_runs():
            if summary.has_result:  # the final result, or a complete checkpoint of a stopped or crashed run
                self.run_combo.addItem(summary.label(), str(summary.path))
        index = self.run_combo.findData(current) if current else -1
        if index < 0 and self.run_combo.count():
            index = 0  # the newest: a list showing no choice looked empty although runs exist
        self.run_combo.setCurrentIndex(index)
        if self.run_combo.count() == 0:
            self.base_label.setText("No trained runs yet: train one in the Training tab, then chat with it here.")
        chosen = self.run_combo.currentData() or ""
        if chosen and chosen != self.run_dir:
            self.open_run(chosen)
        self._update_buttons()

    def show_export_dialog(self) -> Optional[ExportDialog]:
        """Open the Export dialog for the chosen run (nothing happens without one)."""
        run_dir = self.run_combo.currentData() or self.run_dir
        if not run_dir:
            return None
        dialog = ExportDialog(run_dir, self)
        dialog.open()
        return dialog

    def open_run(self, run_dir: str) -> None:
        """Make `run_dir` the tuned run: show its before/after numbers and get its chat ready.

        The chat worker loads the model, which takes memory and time, so it starts only once this
        tab is on screen (a run selected when training ends must not load a model nobody looks at).
        """
        run_dir = str(run_dir or "")
        if run_dir == self.run_dir:
            return
        self.close_session()
        self.run_dir = run_dir
        if self.run_combo.findData(run_dir) < 0:
            self.refresh_runs()
        self.run_combo.setCurrentIndex(self.run_combo.findData(run_dir))
        self.before_after.set_run(run_dir)
        self.clear_conversation()
        if not run_dir:
            return
        info = runs.read_run_info(run_dir)
        base = Path(info.get("base_model_path", "")).name or "unknown"
        self.base_label.setText(f"Base: {base} (the model {Path(run_dir).name} started from) · "
                                f"method {info.get('method', '?')}")
        self.chat_status.setText("The model is loaded for chat when this tab is shown.")
        if self.isVisible():
            self._start_session()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        self.refresh_runs()  # runs trained since the tab was last shown
        if self.run_dir and self.session is None:
            self._start_session()

    def _start_session(self) -> None:
        self.session = ChatSession(self.run_dir, self, target=self.chat_target)
        self.session.ready.connect(self._on_ready)
        self.session.token.connect(self._on_token)
        self.session.answerDone.connect(self._on_answer_done)
        self.session.problem.connect(self._on_problem)
        self.session.turnFinished.connect(self._on_turn_finished)
        self.session.ended.connect(self._on_session_ended)
        self.chat_status.setText("Loading the model for chat…")
        self.session.start()
        self._update_buttons()

    def _on_session_ended(self, _outcome) -> None:
        """The chat worker is gone (crashed, or failed to load): the next showing starts a new one."""
        session, self.session = self.session, None
        if session is not None:
            session.host.wait(2000)
            session.deleteLater()
        self._update_buttons()

    def close_session(self) -> None:
        """Quit the chat worker (frees its memory); called when the run changes or the window closes."""
        session, self.session = self.session, None
        if session is not None:
            for sig in (session.ready, session.token, session.answerDone, session.problem, session.turnFinished,
                        session.ended):
                sig.disconnect()
            session.close()
            session.deleteLater()

    def shutdown(self) -> None:
        """Stop every worker of this tab; call from the main window's closeEvent."""
        self.close_session()
        self.before_after.shutdown()

    # --- chat -------------------------------------------------------------------------------
    def send(self) -> bool:
        """Send the prompt to both models; False when there is nothing to send or no model ready."""
        text = self.prompt.toPlainText().strip()
        if not text or self.session is None or not self.session.is_ready or self.session.busy:
            return False
        if self.held_out is not None and not self._histories["base"]:
            # The held-out example's earlier turns (a system message, say) come with it.
            context = [dict(m) for m in self.held_out.messages[:-1]]
            self._histories = {"base": list(context), "tuned": list(context)}
        for side in ("base", "tuned"):
            self._histories[side].append({"role": "user", "content": text})
        self.base_pane.add_user(text)
        self.tuned_pane.add_user(text)
        self.prompt.clear()
        self.chat_status.setText("The base model is answering…")
        self.session.ask({side: list(history) for side, history in self._histories.items()}, self.settings.values())
        self._update_buttons()
        return True

    def stop_generating(self) -> None:
        if self.session is not None and self.session.busy:
            self.session.stop_generating()
            self.chat_status.setText("Stopping…")

    def clear_conversation(self) -> None:
        """Start a new conversation (the models forget the earlier turns)."""
        for pane in (self.base_pane, self.tuned_pane, self.reference_pane):
            pane.clear()
        self._histories = {"base": [], "tuned": []}
        self.held_out = None
        self.reference_pane.setVisible(False)

    def try_held_out_example(self, seed: Optional[int] = None) -> bool:
        """Put a random held-out example in the prompt and its reference answer in the third pane.

        `seed` picks the same example every time (the README's screenshots)."""
        try:
            rows = read_heldout(self.run_dir).rows
        except EvaluationError as exc:
            self.chat_status.setText(str(exc))
            return False
        examples = (split_example(item) for item in rows)
        candidates = [example for example in examples if example is not None]
        if not candidates:
            self.chat_status.setText("This run kept no held-out question-and-answer examples (plain-text data, or "
                                     "no test or validation split).")
            return False
        self.clear_conversation()
        chooser = self._random if seed is None else random.Random(seed)
        self.held_out = chooser.choice(candidates)
        self.prompt.setPlainText(self.held_out.prompt_text)
        self.reference_pane.add_user(self.held_out.prompt_text)
        self.reference_pane.begin_answer()
        self.reference_pane.append_token(self.held_out.reference)
        self.reference_pane.end_answer(f"row {self.held_out.row} of your data" if self.held_out.row else "")
        self.reference_pane.setVisible(True)
        return True

    def pane(self, side: str) -> ChatPane:
        return self.base_pane if side == "base" else self.tuned_pane

    def _on_ready(self, where: str) -> None:
        self.chat_status.setText(f"Ready ({where}). Write a message, or try a held-out example.")
        self._update_buttons()
        self.chatReady.emit()

    def _on_token(self, side: str, text: str) -> None:
        pane = self.pane(side)
        if not pane.answering:
            pane.begin_answer()
            if side == "tuned":
                self.chat_status.setText("The tuned model is answering…")
        pane.append_token(text)

    def _on_answer_done(self, side: str, done) -> None:
        pane = self.pane(side)
        if not pane.answering:
            pane.begin_answer()  # an empty answer still gets its place in the transcript
        speed = f"{done.tokens} tokens in {done.seconds:.1f} s"
        answer = pane.end_answer(speed)
        self._histories[side].append({"role": "assistant", "content": answer})

    def _on_problem(self, message: str) -> None:
        self._turn_problem = message
        for side in ("base", "tuned"):
            if self._awaiting_answer(side):
                self.pane(side).show_error(message)
        self.chat_status.setText(message)
        self._update_buttons()

    def _awaiting_answer(self, side: str) -> bool:
        history = self._histories[side]
        return bool(history) and history[-1]["role"] == "user"

    def _on_turn_finished(self) -> None:
        # A side stopped (or failed) before it answered keeps no trace of the question in its
        # history, so the next question does not follow two user messages in a row.
        for side in ("base", "tuned"):
            if self._awaiting_answer(side):
                self._histories[side].pop()
                if not self._turn_problem:
                    self.pane(side).begin_answer()
                    self.pane(side).end_answer("(stopped before answering)")
        if not self._turn_problem and self.session is not None and self.session.is_ready:
            self.chat_status.setText("Ready.")
        self._turn_problem = ""
        self._update_buttons()
        self.turnFinished.emit()

    def _update_buttons(self) -> None:
        ready = self.session is not None and self.session.is_ready
        busy = self.session is not None and self.session.busy
        self.send_button.setEnabled(ready and not busy)
        self.stop_button.setEnabled(busy)
        self.held_out_button.setEnabled(bool(self.run_combo.currentData()) and not busy)
        self.clear_button.setEnabled(not busy)
