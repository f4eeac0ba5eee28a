"""The reliability suite's profile and figures, as fixtures and the end-of-session report.

``RELIABILITY_PROFILE`` picks how much work each scenario does
(:mod:`tests.support.reliability_profile`); each case's row of figures is recorded with
:func:`~tests.support.reliability_figures.record_case` and summed per scenario at the end of
the session (:mod:`tests.support.reliability_figures`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.reliability_figures import record_case, report_figures
from tests.support.reliability_profile import PROFILE, Profile


@pytest.fixture(scope="session")
def profile() -> Profile:
    return PROFILE


@pytest.fixture(scope="session")
def figures() -> Callable[..., None]:
    return record_case


def pytest_terminal_summary(terminalreporter: Any) -> None:
    report_figures(terminalreporter)
