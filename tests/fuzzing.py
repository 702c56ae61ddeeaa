"""Hypothesis settings of the fuzzing tests: the same examples on every run in CI, a
longer random exploration on demand.

Two profiles, registered here and chosen in tests/conftest.py:

- ``ci``, the default: ``derandomize=True`` (the examples follow from each test's
  source, not from a random seed, so a case nobody has seen yet can never fail CI at
  random) and no example database; each test's budget is what it names.
- ``explore``: random examples, failures kept in ``.hypothesis/`` and replayed first,
  ``EXPLORE_SCALE`` times each test's budget. Run it locally to look for new cases:
  ``METASTORE_FUZZ=explore python -m pytest tests/importers/test_fuzz_importers.py``
  (or ``--hypothesis-profile=explore``). A case it finds becomes a plain regression
  test beside the fuzzing, and the fix lands with it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_ENV = "METASTORE_FUZZ"
#: How many times each test's examples the exploring profile tries.
EXPLORE_SCALE = 20

settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.register_profile("explore", derandomize=False, deadline=None, print_blob=True)


def load_profile() -> None:
    settings.load_profile(os.environ.get(PROFILE_ENV) or "ci")


def exploring() -> bool:
    return settings.get_current_profile_name() == "explore"


def fuzz(examples: int) -> settings:
    """A fuzzing test's settings: `examples` examples in CI (keep the whole file to
    seconds), EXPLORE_SCALE times as many when exploring. Inherits the profile's
    randomness and example database."""
    return settings(max_examples=examples * (EXPLORE_SCALE if exploring() else 1),
                    deadline=None, suppress_health_check=list(HealthCheck))
