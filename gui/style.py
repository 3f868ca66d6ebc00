"""The window's look: one calm light palette, generous spacing, one accent colour for the primary action.

Views mark widgets with object names or properties instead of styling them one by one:
`QPushButton#primary` (the one main action of a view), `QFrame#card` (a white panel),
`QLabel[role="title"]`, `QLabel[role="subtitle"]`, `QLabel[role="hint"]`, `QLabel[role="warning"]`.
"""
from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication, QHBoxLayout, QLabel, QVBoxLayout, QWidget

ACCENT = "#3b6fd8"
ACCENT_DARK = "#2f5bb5"
BACKGROUND = "#f4f6fa"
CARD = "#ffffff"
BORDER = "#dfe3ea"
TEXT = "#1f2733"
MUTED = "#5d6778"
WARNING_BG = "#fff4dc"
WARNING_TEXT = "#7a4b00"
ERROR_TEXT = "#b3261e"
# Token preview: learned (trained) text and masked (prompt) text must differ at a glance,
# also for colour-blind readers, so they differ in lightness and style, not only hue.
TRAINED_BG = "#d6f0dc"
TRAINED_TEXT = "#10502a"
MASKED_TEXT = "#7d8594"
SPECIAL_TEXT = "#8a3ffc"

QSS = f"""
QMainWindow, QWidget#page {{ background: {BACKGROUND}; }}
QWidget {{ color: {TEXT}; font-size: 10pt; }}
QTabWidget::pane {{ border: none; background: {BACKGROUND}; }}
QTabBar::tab {{ padding: 10px 22px; margin-right: 2px; border: none; background: transparent;
               color: {MUTED}; font-size: 11pt; }}
QTabBar::tab:selected {{ color: {ACCENT}; border-bottom: 3px solid {ACCENT}; font-weight: 600; }}
QTabBar::tab:hover {{ color: {TEXT}; }}
QFrame#card {{ background: {CARD}; border: 1px solid {BORDER}; border-radius: 10px; }}
QLabel[role="title"] {{ font-size: 13pt; font-weight: 600; }}
QLabel[role="subtitle"] {{ font-size: 10.5pt; font-weight: 600; color: {TEXT}; }}
QLabel[role="hint"] {{ color: {MUTED}; }}
QLabel[role="warning"] {{ background: {WARNING_BG}; color: {WARNING_TEXT}; border-radius: 6px; padding: 6px 10px; }}
QLabel[role="error"] {{ color: {ERROR_TEXT}; }}
QPushButton {{ padding: 6px 14px; border: 1px solid {BORDER}; border-radius: 6px; background: {CARD}; }}
QPushButton:hover {{ border-color: {ACCENT}; }}
QPushButton:disabled {{ color: #a0a7b4; }}
QPushButton#primary {{ background: {ACCENT}; color: white; border: none; font-weight: 600; padding: 8px 20px; }}
QPushButton#primary:hover {{ background: {ACCENT_DARK}; }}
QPushButton#primary:disabled {{ background: #a9bce6; }}
QLineEdit {{ padding: 4px 6px; border: 1px solid {BORDER}; border-radius: 5px; background: {CARD};
               min-height: 20px; }}
QLineEdit:focus {{ border-color: {ACCENT}; }}
QComboBox, QSpinBox, QDoubleSpinBox {{ min-height: 24px; }}
QTableView, QTableWidget, QListWidget, QTextEdit, QPlainTextEdit {{ background: {CARD}; border: 1px solid {BORDER};
               border-radius: 6px; selection-background-color: #dbe6fb; selection-color: {TEXT}; }}
QHeaderView::section {{ background: #eef1f6; border: none; border-bottom: 1px solid {BORDER};
               padding: 5px 8px; font-weight: 600; color: {MUTED}; }}
QStatusBar {{ background: {CARD}; border-top: 1px solid {BORDER}; color: {MUTED}; }}
QToolTip {{ background: #fffef5; color: {TEXT}; border: 1px solid {BORDER}; padding: 6px; }}
"""


def apply(app: QApplication) -> None:
    """Give the whole application its palette, font and style sheet."""
    app.setStyle("Fusion")
    palette = app.palette()
    palette.setColor(QPalette.Window, QColor(BACKGROUND))
    palette.setColor(QPalette.Base, QColor(CARD))
    palette.setColor(QPalette.Text, QColor(TEXT))
    palette.setColor(QPalette.WindowText, QColor(TEXT))
    palette.setColor(QPalette.Highlight, QColor(ACCENT))
    app.setPalette(palette)
    font = QFont(app.font())
    font.setPointSizeF(10)
    app.setFont(font)
    app.setStyleSheet(QSS)


def label(text: str, role: str = "", parent: QWidget | None = None, *, wrap: bool = True) -> QLabel:
    """A QLabel with one of the roles the style sheet knows (title, subtitle, hint, warning, error)."""
    widget = QLabel(text, parent)
    if role:
        widget.setProperty("role", role)
    widget.setWordWrap(wrap)
    return widget


def view_header(title: str, hint: str) -> tuple[QHBoxLayout, QLabel]:
    """The top row every view starts with: its title over a one-line hint, with room on the right for
    the view's buttons. Returns the row and the hint label (some views rewrite the hint as they go)."""
    header = QHBoxLayout()
    titles = QVBoxLayout()
    titles.addWidget(label(title, "title"))
    hint_label = label(hint, "hint")
    titles.addWidget(hint_label)
    header.addLayout(titles, 1)
    return header, hint_label
