"""Fixtures shared by the test modules of tests/."""
import pytest


@pytest.fixture(scope="session")
def first_local_run(tmp_path_factory):
  """The first LocalDagRunner run of the small synthetic e2e config (test_pipeline_e2e.first_run),
  once per session: test_pipeline_e2e runs the same config twice more on top of it, and
  test_run_compiled compares the compiled Kubeflow spec's run with it."""
  from tests import test_pipeline_e2e
  return test_pipeline_e2e.first_run(str(tmp_path_factory.mktemp("e2e")))
