"""What every Beam worker process imports before it unpickles a DoFn (a Beam plugin).

A worker of a runner with separate worker processes (DirectRunner multi-processing,
PortableRunner, Dataflow, Flink, Spark) is a fresh Python that imports modules in the order it
unpickles DoFns. Two things then break that never break in the driver:
  * TFDV 1.16.1 imports `tfx_bsl.arrow.sql_util`, which tfx-bsl 1.21 lacks; tfx's own
    `__init__` puts a stand-in module in `sys.modules` (DESIGN.md §3), but a worker that
    unpickles StatisticsGen's DoFns has not imported tfx yet and dies with
    "cannot import name 'sql_util' from 'tfx_bsl.arrow'".
  * TFRS needs Keras 2: TF_USE_LEGACY_KERAS must be set before TensorFlow loads.

Beam's `--beam_plugins` is the worker's import hook: `sdk_worker_main` imports every named
module before it starts the harness (apache_beam/runners/worker/sdk_worker_main.py), on every
runner whose workers start through it — the SDK container's boot does. `pipeline.beam_args`
adds this module to every Beam component's arguments, so the fix is one place, not one per
component.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# Importing tfx installs its `tfx_bsl.arrow.sql_util` stand-in when tfx-bsl has none; after
# that TFDV imports cleanly. (0.12 s: tfx's package __init__ only.)
import tfx  # noqa: E402,F401  pylint: disable=g-import-not-at-top,unused-import

# The module path `--beam_plugins` names.
PLUGIN = __name__
