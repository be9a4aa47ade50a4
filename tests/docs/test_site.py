"""The guide builds as a site with --strict (what `make docs` runs): every page is in the nav and
every internal link and anchor resolves. Built in-process into a temporary folder."""

import re
from pathlib import Path

import pytest

mkdocs_build = pytest.importorskip("mkdocs.commands.build")
from mkdocs.config import load_config  # noqa: E402
from mkdocs.exceptions import Abort  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _build(site: Path, **overrides) -> None:
    cfg = load_config(config_file=str(ROOT / "mkdocs.yml"), strict=True, site_dir=str(site), **overrides)
    mkdocs_build.build(cfg)


def test_the_guide_builds_strict(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")
    _build(tmp_path / "site")
    pages = {p.relative_to(ROOT / "docs").with_suffix("") for p in (ROOT / "docs").glob("*.md")}
    built = {p.parent.relative_to(tmp_path / "site") for p in (tmp_path / "site").rglob("index.html")}
    assert {Path(".") if p.name == "index" else p for p in pages} <= built


def test_a_broken_link_fails_the_build(tmp_path, monkeypatch):
    """The check itself: mkdocs.yml's settings over two pages, one linking to a missing anchor."""
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "other.md").write_text("# Other\n\n## Here\n")
    nav = [{"Home": "index.md"}, {"Other": "other.md"}]
    plain = dict(docs_dir=str(docs), nav=nav, theme={"name": "mkdocs"}, plugins=[])  # the checks are mkdocs
    (docs / "index.md").write_text("# Home\n\n[there](other.md#here)\n")
    _build(tmp_path / "ok", **plain)
    (docs / "index.md").write_text("# Home\n\n[gone](other.md#no-such-section)\n")
    with pytest.raises(Abort):
        _build(tmp_path / "broken", **plain)


def test_the_readme_is_a_front_door_to_every_page():
    """README stays short (measurements live on the performance page) and links every guide page."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    linked = set(re.findall(r"\]\(docs/([^)#]+\.md)", readme))
    assert pages - {"index.md"} <= linked, f"not linked from README: {sorted(pages - linked - {'index.md'})}"
