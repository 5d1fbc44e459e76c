"""`make demo` keeps working: the scripted walkthrough runs on the stack and every session checks out."""

from __future__ import annotations

import asyncio

import pytest

from scripts.local.demo import main_async

pytestmark = pytest.mark.integration


def test_the_walkthrough_ends_with_every_session_correct(stack, capsys):
    assert asyncio.run(main_async(stack)) is True
    printed = capsys.readouterr().out
    assert printed.count("✓") == 3
    assert "via http" in printed
    assert "fallback" in printed
