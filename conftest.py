"""Test-session set-up shared by every test directory.

TFRS needs Keras 2 (tf_keras): TF_USE_LEGACY_KERAS must be set before anything imports
TensorFlow, and this file is loaded by pytest before any test module.
"""
import os

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


# `make test` runs the suite in two pytest-xdist workers. Each group below runs whole in one
# worker, so a fixture wider than a function is built once: a test module under tests/ (the
# end-to-end runs; test_run_compiled shares test_pipeline_e2e's session-scoped first run), a
# directory elsewhere (its conftest's session fixtures). The scheduler is sidrec's own because
# xdist 3.8's `--dist loadgroup` marks ids through `Item._nodeid`, which pytest 9 no longer
# reads: its groups silently fall apart.
_SHARES_A_SESSION_FIXTURE_WITH = {"tests/test_run_compiled.py": "tests/test_pipeline_e2e.py"}


def xdist_group_of(nodeid: str) -> str:
  path = nodeid.split("::")[0]
  if path.startswith("tests/"):
    return _SHARES_A_SESSION_FIXTURE_WITH.get(path, path)
  return os.path.dirname(path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
  from xdist.scheduler import LoadScopeScheduling  # pylint: disable=g-import-not-at-top

  class GroupScheduling(LoadScopeScheduling):
    """xdist's loadscope (whole groups to idle workers, largest first), with xdist_group_of."""

    def _split_scope(self, nodeid: str) -> str:
      return xdist_group_of(nodeid)

  return GroupScheduling(config, log)
