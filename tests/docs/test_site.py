"""The guide builds as a site with --strict (what `make docs` runs): every page is in the nav and
every internal link and anchor resolves. Built in-process into a temporary folder."""

import re
from pathlib import Path

import pytest

mkdocs_build = pytest.importorskip("mkdocs.commands.build")
from mkdocs.config import load_config  # noqa: E402
from mkdocs.exceptions import Abort  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _build(config_file: Path, site: Path) -> None:
    mkdocs_build.build(load_config(config_file=str(config_file), strict=True, site_dir=str(site)))


def test_the_guide_builds_strict(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")
    _build(ROOT / "mkdocs.yml", tmp_path / "site")
    pages = {p.relative_to(ROOT / "docs").with_suffix("") for p in (ROOT / "docs").glob("*.md")}
    built = {p.parent.relative_to(tmp_path / "site") for p in (tmp_path / "site").rglob("index.html")}
    assert {Path(".") if p.name == "index" else p for p in pages} <= built


def test_a_broken_link_fails_the_build(tmp_path, monkeypatch):
    """The check itself: the same config over a copy of docs/ with one link to a missing anchor."""
    import shutil

    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "index.md"
    page.write_text(page.read_text() + "\n[gone](performance.md#no-such-section)\n")
    with pytest.raises(Abort):
        _build(tmp_path / "mkdocs.yml", tmp_path / "site")


def test_the_readme_is_a_front_door_to_every_page():
    """README stays short (measurements live on the performance page) and links every guide page."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    linked = set(re.findall(r"\]\(docs/([^)#]+\.md)", readme))
    assert pages - {"index.md"} <= linked, f"not linked from README: {sorted(pages - linked - {'index.md'})}"
