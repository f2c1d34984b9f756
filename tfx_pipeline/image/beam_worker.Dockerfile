# The Beam SDK worker image for Dataflow, Flink and Spark: the pipeline image plus Beam's
# container entry point, so the runner's workers run sidrec's executors' DoFns with the same
# packages as the tasks that built them.
#   docker build -f tfx_pipeline/image/beam_worker.Dockerfile \
#       --build-arg PIPELINE_IMAGE=REGISTRY/sidrec:TAG -t REGISTRY/sidrec-beam:TAG .
#   sidrec compile-kubeflow ... --beam-arg=--sdk_container_image=REGISTRY/sidrec-beam:TAG
# Beam starts a worker by running the image's ENTRYPOINT, /opt/apache/beam/boot: it fetches
# the pipeline options from the runner, then starts apache_beam.runners.worker.sdk_worker_main,
# which imports the --beam_plugins (components/beam_worker.py: the TFDV import fix) before it
# runs a bundle. The boot binary must come from the SDK image of the very Beam release in the
# lock (apache-beam==2.77.0) and the same Python (3.11).
ARG PIPELINE_IMAGE
FROM apache/beam_python3.11_sdk:2.77.0 AS beam_sdk
FROM ${PIPELINE_IMAGE}
COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]
