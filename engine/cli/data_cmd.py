"""`tunesmith-cli data`: where Tunesmith keeps its files, how big each part is; move it, remove it all,
and add or remove the desktop menu entry."""
from __future__ import annotations

import json


def register(sub) -> None:
    parser = sub.add_parser("data", help="Show the data folder and its size; move it, or remove everything.")
    parser.add_argument("--json", action="store_true", help="Print the folder and sizes as JSON.")
    parser.add_argument("--move", metavar="FOLDER", help="Move the data folder (copy, verify, switch, delete the old).")
    parser.add_argument("--menu-entry", choices=["add", "remove"], help="Add or remove the applications-menu entry.")
    parser.add_argument("--remove-all", action="store_true",
                        help="Delete the data folder (models, runs, GPU support), its location note and the menu "
                             "entry. Asks first unless --yes.")
    parser.add_argument("--yes", action="store_true", help="Do not ask before --remove-all.")
    parser.set_defaults(func=run)


def run(args) -> int:
    from engine import desktop, download, paths, storage
    from engine.cli import UserError

    try:
        if args.move:
            root = storage.move_data(args.move, lambda message, _f: print(message, flush=True))
            print(f"Data folder: {root}")
            return 0
        if args.menu_entry == "add":
            print(f"Menu entry written: {desktop.install_entry()}")
            return 0
        if args.menu_entry == "remove":
            print("Menu entry removed." if desktop.remove_entry() else "There was no menu entry.")
            return 0
    except OSError as exc:  # StorageError and DownloadError are TunesmithErrors: main() prints them
        raise UserError(f"Could not write the menu entry: {exc}") from None
    if args.remove_all:
        root = paths.data_dir(create=False)
        size = storage.folder_size(root)
        if not args.yes and input(f"Delete {root} ({download.human_bytes(size)}: every model and run)? "
                                  "Type yes: ").strip().lower() != "yes":
            print("Nothing was deleted.")
            return 1
        for path in storage.remove_everything():
            print(f"removed {path}")
        return 0
    root = paths.data_dir()
    parts = storage.usage(root)
    if args.json:
        print(json.dumps({"folder": str(root), "parts": [{"name": p.key, "label": p.label, "path": str(p.path),
                                                         "size_bytes": p.size_bytes} for p in parts],
                          "menu_entry": desktop.installed_program()}, indent=2))
        return 0
    print(f"Data folder: {root}")
    for part in parts:
        print(f"  {part.label:<26} {download.human_bytes(part.size_bytes):>10}")
    print(f"  {'Total':<26} {download.human_bytes(sum(p.size_bytes for p in parts)):>10}")
    return 0
