"""Every `devscale … --help` page, one file each, written to a directory: run it before and
after a change to the command line and `diff -r` the two directories.

    python bench/dump_help.py DIR [--columns 100]

Each page comes from a fresh `python -m devtrip_scale … --help` process with COLUMNS set and
stdout a pipe, as a user's pager or CI log would see it; the command tree is walked from the
Typer app, so a new command is dumped without editing this file.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer


def command_paths() -> list[list[str]]:
    """Every command and group of the app, as the words that name it (the root is [])."""
    from devtrip_scale.cli import app

    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        # Typer 0.29 vendors click: a group is known by its `commands`, not click.Group.
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--columns", type=int, default=100)
    args = parser.parse_args()
    args.directory.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "COLUMNS": str(args.columns)}
    env.pop("TERM", None)
    paths = command_paths()
    for path in paths:
        done = subprocess.run([sys.executable, "-m", "devtrip_scale", *path, "--help"],
                              capture_output=True, env=env, check=False)
        name = "_".join(["devscale", *path]) + ".txt"
        (args.directory / name).write_bytes(
            done.stdout + f"\n--- exit {done.returncode}, stderr:\n".encode() + done.stderr)
    print(f"{len(paths)} pages in {args.directory}")


if __name__ == "__main__":
    main()
