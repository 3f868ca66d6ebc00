"""A loss chart as a PNG, without Qt or matplotlib: a small RGB canvas, lines, digits, and a PNG encoder.

Reports must be single files that open anywhere, so the chart is drawn here and embedded as base64.
Only what a loss chart needs: axes, grid lines, numbered ticks (a 3x5 pixel digit font) and lines.
"""
from __future__ import annotations

import struct
import zlib
from typing import Sequence

WHITE, GRID, AXIS = (255, 255, 255), (228, 228, 228), (90, 90, 90)
TRAIN_COLOR, VAL_COLOR = (31, 119, 180), (230, 120, 20)

# 3x5 digit glyphs, one string of 15 pixels ("1" = ink) per character, read row by row.
_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001001001001",
    "8": "111101111101111", "9": "111101111001111", ".": "000000000000010", "-": "000000111000000",
}


def encode_png(width: int, height: int, rgb: bytes) -> bytes:
    """An 8-bit RGB PNG of `rgb` (width*height*3 bytes, rows top to bottom)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    stride = width * 3
    # Each row starts with filter type 0 (none); zlib does the compressing.
    raw = b"".join(b"\x00" + rgb[y * stride:(y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


class Canvas:
    """An RGB pixel buffer with the few drawing operations a chart needs."""

    def __init__(self, width: int, height: int, background=WHITE):
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def dot(self, x: int, y: int, color, size: int = 1) -> None:
        for dy in range(size):
            for dx in range(size):
                px, py = x + dx - size // 2, y + dy - size // 2
                if 0 <= px < self.width and 0 <= py < self.height:
                    at = (py * self.width + px) * 3
                    self.pixels[at:at + 3] = bytes(color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color, width: int = 1) -> None:
        """Bresenham's line, `width` pixels thick."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        error = dx + dy
        while True:
            self.dot(x0, y0, color, width)
            if x0 == x1 and y0 == y1:
                return
            doubled = 2 * error
            if doubled >= dy:
                error += dy
                x0 += sx
            if doubled <= dx:
                error += dx
                y0 += sy

    def text(self, x: int, y: int, text: str, color=AXIS, scale: int = 2) -> None:
        """Digits, '.' and '-' at (x, y) = top left; other characters leave a gap."""
        for index, char in enumerate(text):
            glyph = _GLYPHS.get(char)
            left = x + index * 4 * scale  # 3 pixels of glyph and 1 of space per character
            for pixel, ink in enumerate(glyph or ""):
                if ink == "1":
                    self.dot(left + (pixel % 3) * scale + scale // 2, y + (pixel // 3) * scale + scale // 2, color,
                             size=scale)

    def png(self) -> bytes:
        return encode_png(self.width, self.height, bytes(self.pixels))


def _label(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def loss_chart(series: Sequence[tuple[Sequence[tuple[float, float]], tuple]], width: int = 640,
               height: int = 320) -> bytes:
    """A PNG line chart of (points, color) series, points being (step, loss); steps on x, loss on y."""
    canvas = Canvas(width, height)
    left, right, top, bottom = 56, 12, 12, 28
    points = [p for s, _ in series for p in s]
    if not points:
        return canvas.png()
    x_min, x_max = min(p[0] for p in points), max(p[0] for p in points)
    y_min, y_max = min(p[1] for p in points), max(p[1] for p in points)
    if x_max == x_min:  # a single step: centre it
        x_min, x_max = x_min - 1, x_max + 1
    if y_max == y_min:
        y_min, y_max = y_min - 1, y_max + 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def at(x: float, y: float) -> tuple[int, int]:
        return (left + round((x - x_min) / (x_max - x_min) * plot_w),
                top + round((1 - (y - y_min) / (y_max - y_min)) * plot_h))

    previous_label = None
    for tick in range(5):
        y_value = y_min + (y_max - y_min) * tick / 4
        _, py = at(x_min, y_value)
        canvas.line(left, py, left + plot_w, py, GRID)
        canvas.text(4, py - 5, _label(y_value))
        x_value = x_min + (x_max - x_min) * tick / 4
        px, _ = at(x_value, y_min)
        canvas.line(px, top, px, top + plot_h, GRID)
        label = f"{x_value:.0f}" if x_max - x_min >= 8 else f"{x_value:.1f}".rstrip("0").rstrip(".")
        if label != previous_label:  # few steps: rounded ticks repeat, label each step once
            canvas.text(min(px - len(label) * 4, width - len(label) * 8), top + plot_h + 8, label)
        previous_label = label
    canvas.line(left, top, left, top + plot_h, AXIS)
    canvas.line(left, top + plot_h, left + plot_w, top + plot_h, AXIS)
    for data, color in series:
        pixels = [at(x, y) for x, y in data]
        for (x0, y0), (x1, y1) in zip(pixels, pixels[1:]):
            canvas.line(x0, y0, x1, y1, color, width=2)
        if len(pixels) == 1:
            canvas.dot(*pixels[0], color, size=5)
    return canvas.png()
