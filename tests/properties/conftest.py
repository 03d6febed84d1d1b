"""Hypothesis settings for the property tests: bounded, so the whole folder takes seconds.

HYPOTHESIS_PROFILE=thorough runs ten times the examples (a longer fuzz run by hand).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,  # the machine is shared: timing is not what these tests check
    database=None,  # nothing written into the checkout; a failure prints its reproducer
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", parent=settings.get_profile("ci"), max_examples=1500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
