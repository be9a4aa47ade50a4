"""The commands README.md and docs/*.md show, and what each one's --help says (tests/docs/test_commands.py).

A command is a line of a shell code block (```bash / ```sh / ```shell / ```console; in a block that
uses `$ ` prompts only the prompted lines, the rest being output), `\\` continuations joined and
`# comments` cut, or an inline code span, that starts with `rt-`, `$ rt-` or `make `. Each rt-*
command runs in-process through its console-script entry point ([project.scripts]), so the
argv handling a user gets is what is checked.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from . import console

ROOT = Path(__file__).resolve().parents[3]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell", "console"}  # an unmarked block is a listing or output
OPTION = re.compile(r"(?<![\w$-])(--[a-z0-9][a-z0-9-]*)")
PROGRAM = re.compile(r"rt-[a-z]+")
PLACEHOLDER = re.compile(r"^(<.*>|…|\.\.\.|[A-Z][A-Z0-9_]*)$")  # <family>, …, RUN: not a subcommand


@dataclass(frozen=True)
class Shown:
    file: str  # relative to the repository root
    line: int  # where the command starts
    text: str  # one logical line, whitespace collapsed

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


def _commands_in(text: str) -> list[str]:
    """The commands of one logical line: split at pipes and `&&` / `;`, keep rt-* and make."""
    parts: list[str] = []
    for part in re.split(r"\s(?:\||&&|;)\s", text):
        if parts and part.lstrip().startswith(("-", "[")):  # `--condition a,v | --all-conditions`
            parts[-1] += " " + part
        else:
            parts.append(part)
    out = []
    for part in parts:
        part = part.strip().removeprefix("$ ").strip()
        if part.startswith(("rt-", "make ")):
            out.append(" ".join(part.split()))
    return out


def _code_block_commands(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    prompted = any(t.lstrip().startswith("$ ") for _, t in lines)
    logical, start, buf = [], None, ""
    for no, t in lines:
        if start is None:
            start, buf = no, ""
        buf += " " + t.strip()
        if buf.endswith("\\"):
            buf = buf[:-1]
            continue
        logical.append((start, buf.strip()))
        start = None
    if start is not None:
        logical.append((start, buf.strip()))
    found = []
    for no, t in logical:
        if prompted and not t.startswith("$ "):
            continue  # output of the prompted commands
        t = re.sub(r"(^|\s)#.*$", "", t)  # a shell comment
        found += [(no, c) for c in _commands_in(t)]
    return found


def shown_commands(path: Path) -> list[Shown]:
    """Every command shown in one markdown file, in order."""
    rel = str(path.relative_to(ROOT))
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[tuple[int, str]] = []
    prose: list[str] = []  # the file with code blocks blanked, for inline spans
    block, lang = None, ""
    for no, line in enumerate(lines, 1):
        fence = line.strip().startswith("```")
        if block is None and fence:
            block, lang = [], line.strip()[3:].strip().lower()
            prose.append("")
        elif block is not None and fence:
            if lang in SHELL_LANGS:
                found += _code_block_commands(block)
            block = None
            prose.append("")
        elif block is not None:
            block.append((no, line))
            prose.append("")
        else:
            prose.append(line)
    text = "\n".join(prose)
    for m in re.finditer(r"`([^`]+)`", text):
        span = m.group(1).replace("\\|", "|")
        if span.startswith(("rt-", "$ rt-", "make ")):
            found += [(text.count("\n", 0, m.start()) + 1, c) for c in _commands_in(" ".join(span.split()))]
    return [Shown(rel, no, t) for no, t in sorted(found)]


def all_shown() -> list[Shown]:
    return [c for f in DOC_FILES for c in shown_commands(f)]


# --------------------------------------------------------------------------- running --help
def run_help(prog: str, args: list[str]) -> tuple[int, str]:
    """`prog *args` (a --help) in-process through its entry point; (exit status, stdout)."""
    # wide and plain: rich must not fold an option name across lines, nor colour it
    res = console.run_entry(prog, args, env={"COLUMNS": "240", "NO_COLOR": "1", "TERM": "dumb"})
    return res.returncode, res.stdout


class HelpCache:
    def __init__(self):
        self.scripts = console.console_scripts()
        self._help: dict[tuple[str, ...], tuple[int, str]] = {}

    def help(self, prog: str, path: tuple[str, ...]) -> tuple[int, str]:
        key = (prog, *path)
        if key not in self._help:
            self._help[key] = run_help(prog, [*path, "--help"])
        return self._help[key]

    def is_subcommand(self, prog: str, path: tuple[str, ...], word: str) -> bool:
        """`prog *path word --help` succeeds and its usage line names `word` (a single command given
        an extra word prints its own usage; a group refuses a word it does not know)."""
        code, out = self.help(prog, (*path, word))
        usage = next((ln for ln in out.splitlines() if "usage:" in ln.lower()), "")
        return code == 0 and re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", usage) is not None


def check_command(cmd: str, helps: HelpCache, make_targets: set[str]) -> list[str]:
    """What is wrong with one shown command ([] = nothing)."""
    words = cmd.split()
    if words[0] == "make":
        words = shlex.split(cmd)  # make lock LOCK_ARGS="--upgrade-package NAME"
        return [f"make has no target {t!r}" for t in words[1:]
                if "=" not in t and not t.startswith("-") and t not in make_targets]
    prog = words[0]
    if not PROGRAM.fullmatch(prog):
        return []  # `rt-*` and the like: a family of commands, not one
    if prog not in helps.scripts:
        return [f"{prog} is not a console script of pyproject.toml"]
    paths: list[tuple[str, ...]] = [()]
    for word in words[1:]:
        if word.startswith(("-", "[")) or PLACEHOLDER.match(word):
            break
        alternatives = word.split("|")  # `rt-report accuracy|params`: each must be a subcommand
        missing = [a for a in alternatives for p in paths if not helps.is_subcommand(prog, p, a)]
        if missing:
            return [f"{' '.join((prog, *paths[0]))} has no subcommand {missing[0]!r} (its --help lists none such)"]
        paths = [(*p, a) for p in paths for a in alternatives]
    problems = []
    for path in paths:
        code, out = helps.help(prog, path)
        name = " ".join((prog, *path))
        if code != 0:
            problems.append(f"`{name} --help` exited with {code}: {out[-500:]}")
            continue
        for opt in dict.fromkeys(OPTION.findall(cmd)):
            if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", out):
                problems.append(f"{name}: option {opt} is not in its --help")
    return problems


def makefile_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.%/ -]+?)\s*:(?!=)", line)
        if m and not line.startswith("\t"):
            targets.update(m.group(1).split())
    return targets
