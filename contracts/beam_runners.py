"""The Beam runners that run a pipeline inside the launching process.

Two decisions rest on this one list: the pipeline asks for a worker image only for the others
(tfx_pipeline/pipeline.py: a separate worker would otherwise pip-install TFX's own sdist), and
the ExamplePacker groups through bucket files only on these (their GroupByKey holds its whole
input in this process's memory; components/example_packer/bucket_files.py). `--runner=` takes
a class name, so one set of names serves a flag and a running pipeline's runner alike.
"""

IN_PROCESS_RUNNERS = frozenset({"DirectRunner", "SwitchingDirectRunner", "FnApiRunner",
                                "BundleBasedDirectRunner"})


def runs_in_process(runner_name: str) -> bool:
  """Whether `runner_name` (a `--runner=` value or a runner's class name) is one of them."""
  return runner_name in IN_PROCESS_RUNNERS
