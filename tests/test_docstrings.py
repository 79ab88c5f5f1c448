"""The docstrings attached to the C functions: present, signed, runnable."""

import doctest
import inspect

import pytest

import mla
from mla._docstrings import DOCSTRINGS

PUBLIC_C_FUNCTIONS = sorted(DOCSTRINGS)


def test_docstrings_cover_public_functions():
    exported = {name for name in mla.__all__ if inspect.isbuiltin(getattr(mla, name))}
    assert exported == set(DOCSTRINGS)


@pytest.mark.parametrize("name", PUBLIC_C_FUNCTIONS)
def test_docstring_signature_matches_text(name):
    func = getattr(mla, name)
    first_line = DOCSTRINGS[name].splitlines()[0]
    expected = first_line.replace("$module, ", "").replace("$module", "")
    expected = expected.replace(", /)", ")").replace("(/)", "()")
    displayed = name + str(inspect.signature(func)).replace(", /)", ")").replace(
        "(/)", "()"
    )
    assert displayed == expected


@pytest.mark.parametrize("name", PUBLIC_C_FUNCTIONS)
def test_docstring_examples_run(name):
    func = getattr(mla, name)
    assert func.__doc__, f"{name} has no docstring"
    parser = doctest.DocTestParser()
    test = parser.get_doctest(func.__doc__, {}, name, None, 0)
    assert test.examples, f"{name} has no example"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"{name}: {runner.failures} example(s) failed"


def test_show_config_docstring_present():
    assert "Examples" in mla.show_config.__doc__
