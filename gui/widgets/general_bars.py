"""A small painted bar chart: general ability per benchmark task, base against tuned, with intervals.

Input is the `general_ability` block of RUN/eval/results.json (engine.evaluate.general_ability):
for every task two bars (base, tuned) of the share of questions answered right, a thin line for
each 95% interval and a grey tick at the chance level; tasks that fell beyond noise are marked.
Painted with QPainter: a dozen rectangles need no plotting library.
"""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

BASE_COLOUR = QColor("#3b6fd8")
TUNED_COLOUR = QColor("#e07b00")
FELL_COLOUR = QColor("#c0392b")
CHANCE_COLOUR = QColor("#9aa3ad")
TEXT_COLOUR = QColor("#1f2733")
ROW_HEIGHT = 30
LABEL_WIDTH = 128


class GeneralBars(QWidget):
    """Call `set_general(block)` with the results' general_ability block (or None to clear)."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.rows: list[dict] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Share of benchmark questions answered right per task: blue = base model, orange = tuned "
                        "model; the thin black line is the 95% interval, the grey tick the chance level. A task "
                        "in red fell beyond noise.")

    def set_general(self, general: Optional[dict]) -> None:
        self.rows = list((general or {}).get("per_task") or [])
        self.setFixedHeight(self.sizeHint().height())
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(340, ROW_HEIGHT * len(self.rows) + (18 if self.rows else 0))

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        if not self.rows:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        small = QFont(self.font())
        small.setPointSizeF(max(7.0, self.font().pointSizeF() * 0.85))
        painter.setFont(small)
        left = LABEL_WIDTH
        width = max(40, self.width() - left - 44)
        for index, row in enumerate(self.rows):
            top = index * ROW_HEIGHT
            painter.setPen(FELL_COLOUR if row.get("fell") else TEXT_COLOUR)
            title = QFontMetrics(small).elidedText(row["title"].split(":")[0], Qt.TextElideMode.ElideRight, left - 8)
            painter.drawText(QRectF(0, top, left - 6, ROW_HEIGHT - 4),
                             int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight), title)
            for lane, (side, colour) in enumerate((("base", BASE_COLOUR), ("tuned", TUNED_COLOUR))):
                block = row[side]
                y = top + 3 + lane * 12
                painter.fillRect(QRectF(left, y, width, 10), QColor("#eef1f4"))
                painter.fillRect(QRectF(left, y, width * (block["accuracy"] or 0.0), 10), colour)
                low, high = block["ci"]
                painter.setPen(QPen(TEXT_COLOUR, 1.2))
                painter.drawLine(int(left + width * low), int(y + 5), int(left + width * high), int(y + 5))
                painter.setPen(TEXT_COLOUR)
                painter.drawText(QRectF(left + width + 4, y - 2, 40, 14),
                                 int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
                                 f"{100 * (block['accuracy'] or 0):.0f}%")
            chance_x = left + width * row.get("chance", 0.0)
            painter.setPen(QPen(CHANCE_COLOUR, 2))
            painter.drawLine(int(chance_x), top + 1, int(chance_x), top + 27)
        bottom = len(self.rows) * ROW_HEIGHT
        painter.setPen(TEXT_COLOUR)
        for lane, (name, colour) in enumerate((("base", BASE_COLOUR), ("tuned", TUNED_COLOUR), ("chance", CHANCE_COLOUR))):
            x = left + lane * 70
            painter.fillRect(QRectF(x, bottom + 5, 10, 8), colour)
            painter.drawText(QRectF(x + 14, bottom + 1, 56, 16), int(Qt.AlignmentFlag.AlignVCenter), name)
        painter.end()
