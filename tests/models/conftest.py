"""Fixtures shared by the model tests; each test module provides its own `loaded` model."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.models.serial import Loaded


@pytest.fixture
def slow_steps(loaded: Loaded) -> Iterator[list[int]]:
    """Makes every forward pass of the module's `loaded` model take 20 ms (long enough for the
    event loop to react within one step); yields the list of threads the passes ran in."""
    threads: list[int] = []

    def hook(module: Any, args: Any) -> None:
        threads.append(threading.get_ident())
        time.sleep(0.02)

    handle = loaded[0].register_forward_pre_hook(hook)
    yield threads
    handle.remove()
