"""Every section of docs/ARCHITECTURE.md cited in the code or the docs ("docs/ARCHITECTURE.md §7a",
"§6-§7", "§7 and §12") names a heading that exists, so renumbering a section cannot leave
comments pointing nowhere; and no Python source cites the retired DESIGN file's sections."""

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
# a citation: the file name, then one or more §N joined by "and", ",", "-", "–" or "/"
CITATION = re.compile(r"ARCHITECTURE\.md,?\s+(§\s*\w+(?:\s*(?:and|,|-|–|/)\s*§\s*\w+)*)")
SECTION = re.compile(r"§\s*(\w+)")
HEADING = re.compile(r"^## (\d+[a-z]?)\. ", re.MULTILINE)
SKIP_DIRS = {".git", ".venv", "build", "node_modules", "__pycache__", "site"}
SUFFIXES = {".py", ".md", ".toml", ".cfg", ".txt", ".sh"}
RETIRED = "DESIGN" + " §"  # written apart so that this file does not cite it


def headings(text: str) -> set[str]:
    """The numbered sections of ARCHITECTURE.md: {"1", …, "4a", "7a", …}."""
    return set(HEADING.findall(text))


def cited_sections(text: str) -> list[str]:
    """The section numbers that `text` cites in docs/ARCHITECTURE.md."""
    return [s for group in CITATION.findall(text) for s in SECTION.findall(group)]


def source_files():
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
        for name in files:
            path = Path(folder) / name
            if path.suffix in SUFFIXES or name in ("Makefile", "run"):
                yield path


def test_the_parsers_see_headings_and_citations():
    doc = "# t\n\n## 4. Models\n\n## 4a. Families\n\n### 4b. not a section\n"
    assert headings(doc) == {"4", "4a"}
    text = "see docs/ARCHITECTURE.md §7a; (docs/ARCHITECTURE.md §6-§7) and ARCHITECTURE.md §7 and §12."
    assert cited_sections(text) == ["7a", "6", "7", "7", "12"]


def test_every_cited_section_exists():
    known = headings(ARCHITECTURE.read_text())
    assert {"1", "2", "4a", "7a", "7b", "12"} <= known  # the sections code comments rely on
    missing = []
    for path in source_files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for number in cited_sections(text):
            if number not in known:
                missing.append(f"{path.relative_to(ROOT)}: §{number}")
        if path.suffix == ".py" and RETIRED in text:
            missing.append(f"{path.relative_to(ROOT)}: cites the retired DESIGN file")
    # the doc's own cross-references ("(§7a)")
    missing += [f"docs/ARCHITECTURE.md: §{n}" for n in SECTION.findall(ARCHITECTURE.read_text()) if n not in known]
    assert not missing, "citations of docs/ARCHITECTURE.md sections that do not exist:\n" + "\n".join(missing)
