"""Every command README.md and docs/*.md show is one the tools accept: each rt-* command's
subcommands exist and every --option it uses is in that (sub)command's --help; each `make`
target exists. Run in-process through the console-script entry points (fast: --help only)."""

import pytest

from anymodal_testing.doc_commands import (
    DOC_FILES,
    HelpCache,
    all_shown,
    check_command,
    makefile_targets,
    shown_commands,
)

SHOWN = all_shown()


@pytest.fixture(scope="module")
def helps():
    return HelpCache()


@pytest.fixture(scope="module")
def targets():
    return makefile_targets()


@pytest.mark.parametrize("shown", SHOWN, ids=[s.id for s in SHOWN])
def test_shown_command_is_accepted(shown, helps, targets):
    problems = check_command(shown.text, helps, targets)
    assert not problems, f"{shown.id}: {shown.text}\n  " + "\n  ".join(problems)


def test_every_page_and_the_quick_start_are_read():
    import re

    first_block = re.search(r"```bash\n(.*?)```", DOC_FILES[0].read_text(), re.S).group(1)
    quick_start = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert quick_start == ["make demo", "make test"]  # README's first commands, exactly these
    assert {"make demo", "make test"} <= {s.text for s in shown_commands(DOC_FILES[0])}
    assert {f.name for f in DOC_FILES} >= {"README.md", "index.md", "performance.md", "ARCHITECTURE.md"}
    assert {s.file for s in SHOWN} >= {"README.md", "docs/training.md", "docs/serving.md", "docs/streaming.md"}


def test_continuations_comments_prompts_and_pipes(tmp_path, monkeypatch):
    import anymodal_testing.doc_commands as dc

    md = tmp_path / "page.md"
    md.write_text("```bash\nrt-eval --run R \\\n    --json F   # a comment --not-an-option\n"
                  "producer | rt-run --bundle B -\n```\n\n```console\n$ rt-doctor --json\n"
                  "rt-output-line --looks-like-a-command\n```\n\nInline `rt-report params --bundle B` and\n"
                  "a span over two lines: `rt-bench --condition a,v\n--threads 2`.\n\n"
                  "```\nrt-doctor and its self-test (a listing, not a command)\n```\n")
    monkeypatch.setattr(dc, "ROOT", tmp_path)
    assert [(s.line, s.text) for s in dc.shown_commands(md)] == [
        (2, "rt-eval --run R --json F"), (4, "rt-run --bundle B -"), (8, "rt-doctor --json"),
        (12, "rt-report params --bundle B"), (13, "rt-bench --condition a,v --threads 2")]


def test_the_check_fails_on_what_drifted(helps, targets):
    assert check_command("rt-eval --run R --json F", helps, targets) == []
    assert "option --no-such-option" in check_command("rt-eval --run R --no-such-option", helps, targets)[0]
    assert "no subcommand 'nosuch'" in check_command("rt-report nosuch --bundle B", helps, targets)[0]
    assert "option --out" in check_command("rt-report params --bundle B --out X", helps, targets)[0]
    assert "not a console script" in check_command("rt-nosuch --help", helps, targets)[0]
    assert check_command("make demo test", helps, targets) == []
    assert check_command("make no-such-target", helps, targets) == ["make has no target 'no-such-target'"]
