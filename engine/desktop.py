"""A menu entry for the desktop program, added by the program itself (Linux desktops, freedesktop.org).

The entry is resources/tunesmith.desktop with `Exec` and `Icon` pointing at this program and its icon by
full path, written to ~/.local/share/applications/ (the one place desktops look; nothing else is written
outside the data folder). If the program folder is moved, the next start rewrites the entry.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

ENTRY_NAME = "tunesmith.desktop"
RESOURCES = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent.parent)) / "resources"


def supported() -> bool:
    return sys.platform.startswith("linux")


def applications_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "applications"


def entry_path() -> Path:
    return applications_dir() / ENTRY_NAME


def program_path() -> Optional[Path]:
    """The window's executable: beside the bundled CLI, or the `tunesmith` script of this environment."""
    if getattr(sys, "frozen", False):
        return Path(sys.executable).resolve().with_name("tunesmith")
    beside = Path(sys.executable).with_name("tunesmith")
    found = beside if beside.is_file() else shutil.which("tunesmith")
    return Path(found).resolve() if found else None


def entry_text(program: Path) -> str:
    lines = []
    for line in (RESOURCES / ENTRY_NAME).read_text(encoding="utf-8").splitlines():
        if line.startswith("Exec="):
            line = f"Exec={shlex.quote(str(program))}"
        elif line.startswith("Icon="):
            line = f"Icon={RESOURCES / 'icon.png'}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def installed_program() -> Optional[str]:
    """The program the current menu entry starts, or None without an entry."""
    try:
        for line in entry_path().read_text(encoding="utf-8").splitlines():
            if line.startswith("Exec="):
                return shlex.split(line[5:])[0]
    except (OSError, ValueError, IndexError):
        return None
    return None


def install_entry(program: Optional[Path] = None) -> Path:
    """Write the menu entry; returns its path. Raises OSError when the folder cannot be written."""
    program = program or program_path()
    if program is None:
        raise FileNotFoundError("the `tunesmith` program was not found next to this one")
    path = entry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".new")
    temp.write_text(entry_text(program), encoding="utf-8")
    os.replace(temp, path)
    _refresh_menus()
    return path


def remove_entry() -> list[Path]:
    path = entry_path()
    if not path.exists():
        return []
    path.unlink()
    _refresh_menus()
    return [path]


def refresh_entry() -> bool:
    """Point an existing entry at this program again (the bundle folder was moved); True if rewritten."""
    current, program = installed_program(), program_path()
    if current is None or program is None or current == str(program) or not getattr(sys, "frozen", False):
        return False
    install_entry(program)
    return True


def _refresh_menus() -> None:
    """Most desktops notice the file at once; update-desktop-database makes the rest notice too."""
    tool = shutil.which("update-desktop-database")
    if tool:
        try:
            subprocess.run([tool, str(applications_dir())], capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            pass  # the entry is written; a desktop that missed it shows it after the next login
