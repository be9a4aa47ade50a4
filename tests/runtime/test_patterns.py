import pytest

from anymodal.runtime.errors import InputError, PatternError
from anymodal.runtime.patterns import ALL_PATTERNS, parse_pattern, pattern_mask


@pytest.mark.parametrize("spec", ["a,v", "av", "va", "audio,visual", "Audio, Vision", "a+v",
                                  {"a", "v"}, ["visual", "a"], ("v", "a", "a")])
def test_equivalent_spellings_parse_to_one_pattern(spec):
    assert parse_pattern(spec) == "av"


def test_all_seven_patterns_roundtrip_in_canonical_order():
    assert ALL_PATTERNS == ("a", "t", "v", "at", "av", "tv", "atv")
    for p in ALL_PATTERNS:
        assert parse_pattern(p) == p
    assert parse_pattern("v,t,a") == "atv"
    assert pattern_mask("tv") == (False, True, True)


@pytest.mark.parametrize("spec", ["", ",", set(), []])
def test_empty_pattern_is_an_error_listing_valid_ones(spec):
    with pytest.raises(PatternError, match="atv"):
        parse_pattern(spec)


@pytest.mark.parametrize("spec", ["ax", "a,x", "smell", {"a", "q"}])
def test_unknown_modality_is_an_error_naming_it(spec):
    with pytest.raises(PatternError) as info:
        parse_pattern(spec)
    assert "unknown modality" in str(info.value)
    assert "a (audio)" in str(info.value)
    assert isinstance(info.value, InputError)
