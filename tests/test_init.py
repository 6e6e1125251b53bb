"""Tests for the public API in kbench/__init__.py."""

import subprocess
import sys

import pytest

import kbench


@pytest.mark.parametrize("name", sorted(kbench._EXPORTS))
def test_every_public_name_resolves_to_its_module(name):
    value = getattr(kbench, name)
    assert getattr(__import__(kbench._EXPORTS[name], fromlist=[name]), name) is value


def test_unknown_name_is_an_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        kbench.trian  # noqa: B018


def test_importing_kbench_does_not_import_tensorflow():
    code = "import sys, kbench; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_version_matches_the_installed_distribution():
    from importlib.metadata import version
    assert kbench.__version__ == version("kbench")
