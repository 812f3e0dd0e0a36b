"""``celery_orchestra.__all__`` is true: every name in it resolves, and every public name is in it."""

from __future__ import annotations

import inspect
import types

import celery_orchestra


def test_every_name_in_all_resolves() -> None:
    for name in celery_orchestra.__all__:
        value = getattr(celery_orchestra, name)
        assert value is not None, name
        if inspect.isclass(value) or inspect.isfunction(value):
            # Named by their public path, whichever module defines them (as httpx does).
            assert value.__module__ == "celery_orchestra", (name, value.__module__)


def test_every_public_name_is_in_all() -> None:
    public = {
        name
        for name in dir(celery_orchestra)
        if not name.startswith("_") and not isinstance(getattr(celery_orchestra, name), types.ModuleType)
    }
    assert public == set(celery_orchestra.__all__)


def test_all_is_sorted_and_has_no_duplicates() -> None:
    assert list(celery_orchestra.__all__) == sorted(set(celery_orchestra.__all__))


def test_unknown_names_raise_attribute_error() -> None:
    try:
        celery_orchestra.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as error:
        assert "NoSuchThing" in str(error)
    else:
        raise AssertionError("celery_orchestra.NoSuchThing resolved")
