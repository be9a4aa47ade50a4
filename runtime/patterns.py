"""Modalities and modality-availability patterns (docs/ARCHITECTURE.md §3).

A pattern is a non-empty subset of the modalities, named by its letters in canonical order
(`a` audio, `t` text, `v` visual): `a t v at av tv atv`. Pattern names are the file stems of
the graphs in a bundle.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import PatternError

MODALITIES: tuple[str, ...] = ("a", "t", "v")
MODALITY_NAMES: dict[str, str] = {"a": "audio", "t": "text", "v": "visual"}
# Canonical order: singles, pairs, full (also the row order of the paper's Table 2).
ALL_PATTERNS: tuple[str, ...] = ("a", "t", "v", "at", "av", "tv", "atv")

_ALIASES: dict[str, str] = {
    "a": "a", "audio": "a", "acoustic": "a",
    "t": "t", "text": "t", "l": "t", "language": "t",
    "v": "v", "visual": "v", "vision": "v", "video": "v",
}


def _tokens(spec: str) -> list[str]:
    parts = [p for p in spec.replace("+", ",").replace(" ", ",").split(",") if p]
    if len(parts) == 1 and parts[0].lower() not in _ALIASES:
        return list(parts[0])  # "av" -> ["a", "v"]
    return parts


def parse_pattern(spec: str | Iterable[str]) -> str:
    """Return the canonical pattern name for "a,v", "av", "audio,visual", {"a", "v"}, ...

    Raises PatternError for an empty pattern or an unknown modality, listing the valid ones.
    """
    tokens = _tokens(spec) if isinstance(spec, str) else [str(s) for s in spec]
    present = set()
    for tok in tokens:
        key = tok.strip().lower()
        if key not in _ALIASES:
            raise PatternError(
                f"unknown modality {tok!r} in pattern {spec!r}; valid modalities: "
                f"{', '.join(f'{k} ({v})' for k, v in MODALITY_NAMES.items())}; "
                f"valid patterns: {' '.join(ALL_PATTERNS)}"
            )
        present.add(_ALIASES[key])
    if not present:
        raise PatternError(
            f"empty pattern {spec!r}: at least one modality must be present; "
            f"valid patterns: {' '.join(ALL_PATTERNS)}"
        )
    return "".join(m for m in MODALITIES if m in present)


def pattern_modalities(pattern: str) -> tuple[str, ...]:
    """The modalities of a (parsed or unparsed) pattern, in canonical order."""
    return tuple(parse_pattern(pattern))


def pattern_mask(pattern: str) -> tuple[bool, bool, bool]:
    """Availability flags (audio, text, visual)."""
    p = parse_pattern(pattern)
    return tuple(m in p for m in MODALITIES)  # type: ignore[return-value]
