"""The collector pause: off inside, restored after, and large survivors frozen on request."""

from __future__ import annotations

import gc

import pytest

from profiles_automator.gc_pause import FREEZE_ABOVE, no_gc_pauses


@pytest.fixture(autouse=True)
def _unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_the_collector_is_off_inside_and_back_on_after():
    # Arrange
    assert gc.isenabled()

    # Act
    with no_gc_pauses():
        inside = gc.isenabled()

    # Assert
    assert not inside
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    # Arrange
    gc.disable()
    try:
        # Act
        with no_gc_pauses():
            pass

        # Assert
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_many_survivors_are_frozen_so_later_collections_skip_them():
    # Arrange
    survivors: list[dict[str, int]] = []

    # Act
    with no_gc_pauses(freeze_survivors=True):
        survivors.extend({"n": n} for n in range(FREEZE_ABOVE + 1000))

    # Assert
    assert gc.get_freeze_count() >= len(survivors)


def test_few_survivors_are_left_to_the_collector():
    # Arrange
    survivors: list[dict[str, int]] = []

    # Act
    with no_gc_pauses(freeze_survivors=True):
        survivors.extend({"n": n} for n in range(100))

    # Assert
    assert gc.get_freeze_count() == 0


def test_survivors_are_not_frozen_unless_asked():
    # Arrange
    survivors: list[dict[str, int]] = []

    # Act
    with no_gc_pauses():
        survivors.extend({"n": n} for n in range(FREEZE_ABOVE + 1000))

    # Assert
    assert gc.get_freeze_count() == 0
