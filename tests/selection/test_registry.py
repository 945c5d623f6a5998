"""The method registry."""

import pytest

from sbbench.selection import (METHOD_FIELDS, METHODS, SelectionMethod, SelectionSettings,
                               build_method)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_registered_method_builds(name):
    method = build_method(name, SelectionSettings(batch_size=8, num_train=100))
    assert isinstance(method, METHODS[name]) and isinstance(method, SelectionMethod)
    assert method.name == name
    assert method.candidates_per_forward >= 8
    assert method.selection_forwards_skipped == 0 and isinstance(method.extra_metrics(), dict)


def test_registry_covers_the_expected_methods_and_the_field_table():
    assert set(METHODS) == {"traditional", "random", "sb", "stale_sb", "kath18"}
    assert set(METHOD_FIELDS) == set(METHODS)


@pytest.mark.parametrize("bad", ["magic", "SB", "", "stale-sb"])
def test_unknown_method_raises_naming_the_allowed_ones(bad):
    with pytest.raises(ValueError) as error:
        build_method(bad, SelectionSettings(batch_size=8, num_train=100))
    message = str(error.value)
    assert repr(bad) in message
    assert "allowed: " + ", ".join(sorted(METHODS)) in message
