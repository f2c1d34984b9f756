"""The gRPC API of sidrec's local model server (a stand-in for tensorflow_model_server).

The servicers of tensorflow-serving-api's generated code, so any TF Serving client (TFX's
InfraValidator client, a `PredictionServiceStub`) talks to it unchanged:

  PredictionService  Predict; GetModelMetadata (metadata_field "signature_def": an Any-packed
                     tensorflow.serving.SignatureDefMap read from the version's saved_model.pb);
                     Classify, Regress, MultiInference -> UNIMPLEMENTED (sidrec models expose
                     predict signatures only)
  ModelService       GetModelStatus (every version, its state and status);
                     HandleReloadConfigRequest (swap in a new ModelServerConfig)

Errors end the call with context.abort and TF Serving's status code and message.
"""

from __future__ import annotations

import functools
import logging
from typing import Optional

import grpc
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import servables
from serving import tensors

log = logging.getLogger(__name__)

SIGNATURE_DEF_FIELD = "signature_def"
PREDICT_ONLY = ("sidrec models expose predict signatures only (tensorflow/serving/predict); "
                "call Predict")


def spec_version(model_spec):
  """(version or None, label or None) of a ModelSpec's version_choice oneof."""
  which = model_spec.WhichOneof("version_choice")
  if which == "version":
    return model_spec.version.value, None
  if which == "version_label":
    return None, model_spec.version_label
  return None, None


def _aborts_on_error(method):
  """Turns a ServingError into the call's status; anything else into INTERNAL (logged)."""
  @functools.wraps(method)
  def wrapper(self, request, context):
    try:
      return method(self, request, context)
    except tensors.ServingError as e:
      context.abort(e.code, e.message)
    except Exception as e:  # pylint: disable=broad-except  (never a traceback to a client)
      log.exception("%s failed", method.__name__)
      context.abort(grpc.StatusCode.INTERNAL, f"{method.__name__} failed: {e}")
  return wrapper


def require_model_spec(request) -> None:
  """predict_impl.cc & co.: a request without a model_spec -> INVALID_ARGUMENT."""
  if not request.HasField("model_spec"):
    raise tensors.invalid("Missing ModelSpec")


def require_model_name(model_spec) -> str:
  """server_core.cc ServableRequestFromModelSpec: an empty name -> INVALID_ARGUMENT."""
  if not model_spec.name:
    raise tensors.invalid("ModelSpec has no name specified.")
  return model_spec.name


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
  """PredictionService over a VersionManager (and a BatchScheduler's run when batching)."""

  def __init__(self, manager: servables.VersionManager,
               runner: Optional[servables.Runner] = None):
    self._manager, self._runner = manager, runner

  @_aborts_on_error
  def Predict(self, request, context):  # pylint: disable=invalid-name
    require_model_spec(request)
    name = require_model_name(request.model_spec)
    version, label = spec_version(request.model_spec)
    inputs = {alias: tensors.tensor_proto_to_array(alias, proto)
              for alias, proto in request.inputs.items()}
    served, signature, outputs = servables.predict(
        self._manager, name, version, label, request.model_spec.signature_name, inputs,
        list(request.output_filter), self._runner)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = name
    response.model_spec.version.value = served
    response.model_spec.signature_name = signature
    for alias, value in outputs.items():
      response.outputs[alias].CopyFrom(tensors.array_to_tensor_proto(value))
    return response

  @_aborts_on_error
  def GetModelMetadata(self, request, context):  # pylint: disable=invalid-name
    return model_metadata(self._manager, request)

  def Classify(self, request, context):  # pylint: disable=invalid-name
    context.abort(grpc.StatusCode.UNIMPLEMENTED, f"Classify is not supported: {PREDICT_ONLY}")

  def Regress(self, request, context):  # pylint: disable=invalid-name
    context.abort(grpc.StatusCode.UNIMPLEMENTED, f"Regress is not supported: {PREDICT_ONLY}")

  def MultiInference(self, request, context):  # pylint: disable=invalid-name
    context.abort(grpc.StatusCode.UNIMPLEMENTED,
                  f"MultiInference is not supported: {PREDICT_ONLY}")


def model_metadata(manager: servables.VersionManager, request
                   ) -> get_model_metadata_pb2.GetModelMetadataResponse:
  """GetModelMetadata: the pinned version's SignatureDefMap (the only field TF Serving has)."""
  require_model_spec(request)
  name = require_model_name(request.model_spec)
  if not request.metadata_field:
    raise tensors.invalid("GetModelMetadataRequest must specify at least one metadata_field "
                          f"(the only one is {SIGNATURE_DEF_FIELD!r})")
  for field in request.metadata_field:
    if field != SIGNATURE_DEF_FIELD:
      raise tensors.invalid(f"Metadata field {field} is not supported (the only one is "
                            f"{SIGNATURE_DEF_FIELD!r})")
  version, label = spec_version(request.model_spec)
  with manager.acquire(name, version, label) as loaded:
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in loaded.signature_defs.items():
      signature_map.signature_def[key].CopyFrom(signature)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = name
    response.model_spec.version.value = loaded.version
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


def model_status(manager: servables.VersionManager, request
                 ) -> get_model_status_pb2.GetModelStatusResponse:
  """GetModelStatus: each known version of the model (or the one asked for).

  As get_model_status_impl.cc: no model_spec -> INVALID_ARGUMENT "Missing ModelSpec"; an
  empty name is looked up like any other (NOT_FOUND "Could not find any versions of model ");
  a label is ignored (every version is listed), only a version number narrows the list.
  """
  require_model_spec(request)
  name = request.model_spec.name
  version, label = spec_version(request.model_spec)
  response = get_model_status_pb2.GetModelStatusResponse()
  for number, state, code, message in manager.status(name, version, label):
    entry = response.model_version_status.add(version=number, state=state)
    entry.status.error_code = code.value[0]
    entry.status.error_message = message
  return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
  """ModelService: version status and config reloads."""

  def __init__(self, manager: servables.VersionManager):
    self._manager = manager

  @_aborts_on_error
  def GetModelStatus(self, request, context):  # pylint: disable=invalid-name
    return model_status(self._manager, request)

  @_aborts_on_error
  def HandleReloadConfigRequest(self, request, context):  # pylint: disable=invalid-name
    if request.config.WhichOneof("config") != "model_config_list":
      raise tensors.invalid("ReloadConfigRequest.config must hold a model_config_list (a "
                            "custom_model_config is not supported)")
    for model in request.config.model_config_list.config:
      if not model.name or not model.base_path:
        raise tensors.invalid(f"every ModelConfig needs a name and a base_path (got name "
                              f"{model.name!r}, base_path {model.base_path!r})")
    self._manager.reload(request.config)
    return model_management_pb2.ReloadConfigResponse()


def add_services(server: grpc.Server, manager: servables.VersionManager,
                 runner: Optional[servables.Runner] = None) -> None:
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
      PredictionServicer(manager, runner), server)
  model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(manager), server)
