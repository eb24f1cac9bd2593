"""One intra-op torch thread for the explanation tests (tiny models; see tests/conftest.py one_thread)."""

from __future__ import annotations

import pytest

from tests.conftest import one_thread


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    with one_thread():
        yield
