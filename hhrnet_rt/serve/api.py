"""The FastAPI face of ``hhrt serve``: its routes as an OpenAPI document (``/openapi.json``, ``/docs``).

FastAPI comes with Ray Serve; only :mod:`hhrnet_rt.serve.deployment` imports this module. FastAPI here
describes and dispatches, nothing more: every documented route is the deployment's one ``answer``
method, which hands the request to :class:`~hhrnet_rt.serve.handler.RequestHandler`, so the body limits,
the upload deadline, 429 and the token rule stay in one place. That is also why no route declares a
FastAPI body parameter (FastAPI would read the whole body first, past every limit): request bodies are
described with ``openapi_extra`` and their models added to the document by :func:`new_app`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from hhrnet_rt._version import __version__
from hhrnet_rt.serve import oip, protocol
from hhrnet_rt.serve.page import PAGE_PATH

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_SCHEMAS = "#/components/schemas/{model}"


class Person(BaseModel):
    score: float | None = Field(description="person score: the mean of the joints' heatmap values")
    keypoints: list[list[float | None]] = Field(
        description="K joints of [x, y, score], x and y in the image's pixels (0.01 px), null where not finite"
    )


class PosesRecord(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    schema_: str = Field(alias="schema", description=f"always {protocol.KEYPOINTS_SCHEMA!r}")
    width: int
    height: int
    people: list[Person] = Field(description="exactly as `hhrt image --json` writes them")


class Error(BaseModel):
    error: str = Field(description="what was wrong and what to do; never a traceback")


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1: any size")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class InferInput(BaseModel):
    name: str = Field(description=f"{oip.BYTES_INPUT!r} (BYTES [1]: a JPEG or PNG file, base64 in JSON) or "
                      f"{oip.PIXELS_INPUT!r} (UINT8 [H, W, 3], RGB order)")  # fmt: skip
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = Field(
        None, description="binary_data_size: the tensor follows the JSON"
    )
    data: list[Any] | None = None


class RequestedOutput(BaseModel):
    name: str = Field(description=", ".join(oip.OUTPUTS))
    parameters: dict[str, Any] | None = Field(None, description="binary_data: true for a binary answer")


class InferRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = Field(None, description="binary_data_output: all outputs binary")
    inputs: list[InferInput] = Field(description="exactly one input")
    outputs: list[RequestedOutput] | None = Field(None, description="default: all of them")


class InferOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[InferOutput] = Field(
        description="keypoints FP32 [P, K, 3] (x, y, score; unrounded), scores FP32 [P], "
        "record BYTES [1] (the JSON answer of POST /v1/poses)"
    )


def _errors(*statuses: int) -> dict:
    return {status: {"model": Error, "description": "refused: the reason in `error`"} for status in statuses}


_TOKEN: dict[str, Any] = {"security": [{"bearer": []}]}
_IMAGE_BODY = {"content": {kind: {"schema": {"type": "string", "format": "binary"}} for kind in ("image/jpeg", "image/png")},
               "required": True}  # fmt: skip
_INFER_BODY = {
    "content": {
        "application/json": {"schema": {"$ref": _SCHEMAS.format(model="InferRequest")}},
        "application/octet-stream": {
            "schema": {"type": "string", "format": "binary"},
            "description": "binary tensor extension: the JSON InferRequest, then the tensors' bytes; "
            "the Inference-Header-Content-Length header gives the JSON's length",
        },
    },
    "required": True,
}
_MODEL = {"parameters": [{"name": "model_name", "in": "path", "required": True,
                          "schema": {"type": "string", "enum": [oip.MODEL_NAME]}}]}  # fmt: skip
_V2 = ["Open Inference Protocol v2"]

#: (path, method, FastAPI route options) of every documented route.
ROUTES: list[tuple[str, str, dict]] = [
    (PAGE_PATH, "GET", {"summary": "the upload page: drop an image, see it drawn (no token)", "tags": ["page"],
                        "response_class": HTMLResponse}),
    (protocol.POSES_PATH, "POST", {"summary": "poses of one JPEG or PNG image", "tags": ["v1"],
                                   "openapi_extra": {"requestBody": _IMAGE_BODY, **_TOKEN},
                                   "responses": {200: {"model": PosesRecord}, **_errors(400, 401, 408, 413, 415, 429)}}),
    (protocol.HEALTH_PATH, "GET", {"summary": "liveness (no token; a deployment of its own)", "tags": ["v1"]}),
    (protocol.INFO_PATH, "GET", {"summary": "model, backend, versions, limits, batches so far", "tags": ["v1"],
                                 "openapi_extra": _TOKEN, "responses": _errors(401)}),
    ("/v2", "GET", {"summary": "server metadata", "tags": _V2, "openapi_extra": _TOKEN,
                    "responses": {200: {"model": ServerMetadata}, **_errors(401)}}),
    ("/v2/health/live", "GET", {"summary": "server live (no token)", "tags": _V2}),
    ("/v2/health/ready", "GET", {"summary": "server ready: a replica with its model loaded answered (no token)",
                                 "tags": _V2}),
    ("/v2/models/{model_name}", "GET", {"summary": "model metadata", "tags": _V2,
                                        "openapi_extra": {**_MODEL, **_TOKEN},
                                        "responses": {200: {"model": ModelMetadata}, **_errors(401, 404)}}),
    ("/v2/models/{model_name}/ready", "GET", {"summary": "model ready", "tags": _V2,
                                              "openapi_extra": {**_MODEL, **_TOKEN}, "responses": _errors(401, 404)}),
    ("/v2/models/{model_name}/infer", "POST", {"summary": "poses of one image tensor", "tags": _V2,
                                               "openapi_extra": {**_MODEL, **_TOKEN, "requestBody": _INFER_BODY},
                                               "responses": {200: {"model": InferResponse},
                                                             **_errors(400, 401, 404, 408, 413, 415, 429)}}),
]  # fmt: skip


def new_app() -> FastAPI:
    """An app with the docs pages and an OpenAPI document that also holds the request bodies' models and
    the bearer scheme (the ``Authorize`` button of ``/docs``)."""
    app = FastAPI(
        redoc_url=None,  # one docs page (/docs) is enough surface
        title="hhrt serve",
        version=__version__,
        description="Multi-person 2D poses (HigherHRNet) of JPEG/PNG images: hhrt's /v1 API and the Open "
        'Inference Protocol v2 (KServe, Triton clients). Errors are `{"error": ...}`. A bearer token, when '
        "the server has one, guards every route but the health routes, this page and the upload page.",
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)  # fmt: skip
            components = document.setdefault("components", {})
            schemas = components.setdefault("schemas", {})
            # FastAPI documents a 422 for routes with parameters; hhrt never answers it (the handler
            # checks requests itself: 400 and the reason).
            for operations in document["paths"].values():
                for operation in operations.values():
                    operation["responses"].pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            extra = InferRequest.model_json_schema(ref_template=_SCHEMAS)
            schemas.update(extra.pop("$defs", {}))
            schemas["InferRequest"] = extra
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def add_routes(app: FastAPI, answer: Callable) -> None:
    """Every documented route, then a catch-all (not documented) that lets the handler answer the rest:
    404 and 405 in hhrt's shape, versioned v2 paths, HEAD."""
    for path, method, options in ROUTES:
        app.add_api_route(path, answer, methods=[method], **options)
    app.add_api_route("/{path:path}", answer, methods=ALL_METHODS, include_in_schema=False)
