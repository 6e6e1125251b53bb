"""Tests for the kbench.data package: its public names, each defined in one module."""

from __future__ import annotations

import importlib

import pytest

from kbench import data

MODULES = ("checksums", "idx", "pipelines", "records", "sources", "synthetic")


@pytest.mark.parametrize("name", data.__all__)
def test_every_public_name_comes_from_exactly_one_module(name):
    homes = [module for module in MODULES
             if name in importlib.import_module(f"kbench.data.{module}").__all__]
    assert len(homes) == 1, (name, homes)
    assert getattr(importlib.import_module(f"kbench.data.{homes[0]}"), name) is getattr(data, name)
