"""A real terminal for screen tests: a tmux server of its own, one window of a given size (no
status line), a command typed as a shell would show it, and what a person sees afterwards."""

from __future__ import annotations

import shlex
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.readme import devscale_shim


@dataclass
class Shown:
    """A command's run in a terminal: its exit code, the screen as a person sees it when it
    ends, the whole output with the lines the terminal wrapped joined back (`-J`), and the
    screen with its colours (escape sequences)."""

    code: int
    screen: list[str]
    joined: list[str]
    coloured: str


class Terminal:
    """`tmux new-session -d -x COLUMNS -y LINES` on a socket of its own; `run` types one command
    and waits for it to end."""

    def __init__(self, workdir: Path, columns: int, lines: int,
                 env: dict[str, str] | None = None) -> None:
        self.workdir, self.columns, self.lines = workdir, columns, lines
        self.env = env or {}
        self.socket = f"devscale-screen-{uuid.uuid4().hex[:8]}"
        self.config = workdir / "tmux.conf"
        self.config.write_text("set -g status off\nset -g history-limit 5000\n")

    def tmux(self, *args: str, timeout: float = 30) -> str:
        return subprocess.run(["tmux", "-L", self.socket, "-f", str(self.config), *args],
                              capture_output=True, text=True, check=True,
                              timeout=timeout).stdout

    def run(self, command: str, timeout: float = 120) -> Shown:
        """`command` in a fresh window at this size, after a `$ command` line as a shell's
        prompt would echo it; `devscale` is this tree's."""
        rc = self.workdir / f"rc-{uuid.uuid4().hex[:6]}"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        script = (f"cd {shlex.quote(str(self.workdir))}; "
                  f"export PATH={devscale_shim(self.workdir)}:$PATH TERM=tmux-256color "
                  f"{exports}; unset COLUMNS LINES; printf '$ %s\\n' {shlex.quote(command)}; "
                  f"{command}; echo $? > {rc}; tmux -L {self.socket} wait-for -S done; "
                  "sleep 600")
        self.tmux("new-session", "-d", "-x", str(self.columns), "-y", str(self.lines),
                  "bash", "--norc", "--noprofile", "-c", script)
        try:
            self.tmux("wait-for", "done", timeout=timeout)
            screen = self.tmux("capture-pane", "-p").splitlines()
            joined = self.tmux("capture-pane", "-p", "-J", "-S", "-").splitlines()
            coloured = self.tmux("capture-pane", "-p", "-e")
        finally:
            self.tmux("kill-server")
        while screen and not screen[-1].strip():
            screen.pop()
        while joined and not joined[-1].strip():
            joined.pop()
        return Shown(int(rc.read_text()), screen, joined, coloured)
