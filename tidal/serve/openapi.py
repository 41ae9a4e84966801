"""The OpenAPI 3.1 document of the model server (``GET /openapi.json``).

Written out rather than generated: the server is plain Starlette (no schema-generating
framework on the hot path), and the V2 shapes come from the Open Inference Protocol.
"""

from __future__ import annotations

from typing import Any

_ERROR = {"description": "The request was at fault; the message says how.",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "The deployment's name."}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "A model version the deployment serves (stable, canary or shadow)."}
_HEADERS = [
    {"name": "X-Request-Id", "in": "header", "schema": {"type": "string"},
     "description": "Your id for the request (generated when absent; returned)."},
    {"name": "X-Event-Time", "in": "header", "schema": {"type": "string"},
     "description": "When the event being predicted happened (epoch seconds or ISO 8601)."},
    {"name": "X-Tidal-Route-Key", "in": "header", "schema": {"type": "string"},
     "description": "A key that keeps a user on one version during a canary."},
]


def _json_body(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _ok(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _infer(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {"post": {
        "summary": "Predict (Open Inference Protocol v2; one tensor per column)",
        "parameters": parameters + _HEADERS, "requestBody": _json_body("InferenceRequest"),
        "responses": {"200": _ok("InferenceResponse", "The model's outputs."),
                      "400": _ERROR, "404": _ERROR, "413": _ERROR}}}


def _get(summary: str, ref: str, parameters: list[dict[str, Any]] | None = None
         ) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": parameters or [],
                    "responses": {"200": _ok(ref, summary), "404": _ERROR}}}


def openapi_document(version: str) -> dict[str, Any]:
    tensor = {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string", "enum": ["BOOL", "INT8", "INT16", "INT32", "INT64",
                                                "UINT8", "UINT16", "UINT32", "UINT64",
                                                "FP16", "FP32", "FP64", "BYTES"]},
        "parameters": {"type": "object"},
        "data": {"type": "array"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tidal model server", "version": version,
                 "description": "Open Inference Protocol v2 and JSON records. Errors are "
                                "{\"error\": message} with a 4xx status for bad input."},
        "paths": {
            "/v2/health/live": _get("Liveness", "Status"),
            "/v2/health/ready": _get("Readiness (503 until the deployments are loaded)",
                                     "Status"),
            "/v2": _get("Server metadata", "ServerMetadata"),
            "/v2/models/{name}": _get("Deployment metadata (its stable version)",
                                      "ModelMetadata", [_NAME]),
            "/v2/models/{name}/versions/{version}": _get(
                "Metadata of one version", "ModelMetadata", [_NAME, _VERSION]),
            "/v2/models/{name}/ready": _get("Is the deployment ready", "Status", [_NAME]),
            "/v2/models/{name}/versions/{version}/ready": _get(
                "Is the version ready", "Status", [_NAME, _VERSION]),
            "/v2/models/{name}/infer": _infer([_NAME]),
            "/v2/models/{name}/versions/{version}/infer": _infer([_NAME, _VERSION]),
            "/v1/predict": {"post": {
                "summary": "Predict from JSON records",
                "parameters": _HEADERS, "requestBody": _json_body("RecordsRequest"),
                "responses": {"200": _ok("RecordsResponse", "One prediction per record."),
                              "400": _ERROR, "404": _ERROR, "413": _ERROR}}},
            "/v1/predict/{name}": {"post": {
                "summary": "Predict from JSON records with a named deployment",
                "parameters": [_NAME, *_HEADERS],
                "requestBody": _json_body("RecordsRequest"),
                "responses": {"200": _ok("RecordsResponse", "One prediction per record."),
                              "400": _ERROR, "404": _ERROR, "413": _ERROR}}},
            "/v1/feedback": {"post": {
                "summary": "Labels for earlier predictions (feedback or admin token)",
                "security": [{"bearer": []}],
                "requestBody": _json_body("FeedbackRequest"),
                "responses": {"200": _ok("FeedbackResponse", "Labels stored."),
                              "400": _ERROR, "401": _ERROR, "403": _ERROR, "404": _ERROR,
                              "413": _ERROR}}},
            "/v1/review": {"get": {
                "summary": "The review queue (feedback or admin token)",
                "security": [{"bearer": []}],
                "parameters": [{"name": n, "in": "query", "schema": {"type": t}}
                               for n, t in (("deployment", "string"), ("status", "string"),
                                            ("limit", "integer"))],
                "responses": {"200": {"description": "Items, oldest first"},
                              "400": _ERROR, "401": _ERROR, "403": _ERROR}}},
            "/v1/review/next": {"post": {
                "summary": "Claim the next item for a reviewer (body: deployment, reviewer)",
                "security": [{"bearer": []}],
                "responses": {"200": {"description": "The item, or null"}, "400": _ERROR,
                              "401": _ERROR, "403": _ERROR, "404": _ERROR}}},
            "/v1/review/{item}/answer": {"post": {
                "summary": "Answer an item: reviewer, label or unsure, familiar, note",
                "security": [{"bearer": []}],
                "parameters": [{"name": "item", "in": "path", "required": True,
                                "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "The item after the answer"},
                              "400": _ERROR, "401": _ERROR, "403": _ERROR, "404": _ERROR,
                              "409": _ERROR}}},
            "/v1/review/agreement": {"get": {
                "summary": "Agreement between reviewers, per pair and per class",
                "security": [{"bearer": []}],
                "parameters": [{"name": "deployment", "in": "query", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "Agreement rates"}, "400": _ERROR,
                              "401": _ERROR, "403": _ERROR}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
                "200": {"description": "Exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/admin/status": {"get": {"summary": "What this replica serves (admin token)",
                                      "security": [{"bearer": []}],
                                      "responses": {"200": {"description": "Status"},
                                                    "401": _ERROR, "403": _ERROR}}},
            "/admin/reload": {"post": {"summary": "Re-read the deployments now (admin token)",
                                       "security": [{"bearer": []}],
                                       "responses": {"200": {"description": "Status"},
                                                     "401": _ERROR, "403": _ERROR}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "FeedbackLabel": {"type": "object", "required": ["label"], "properties": {
                    "deployment": {"type": "string"},
                    "request_id": {"type": "string", "maxLength": 128},
                    "row": {"type": "integer", "minimum": 0},
                    "key": {"type": "string", "maxLength": 256},
                    "event_time": {"type": "number", "description": "epoch seconds"},
                    "label": {"type": ["number", "string", "boolean"]}},
                    "description": "By request_id (and row), or by key and event_time"},
                "FeedbackRequest": {"oneOf": [
                    {"$ref": "#/components/schemas/FeedbackLabel"},
                    {"type": "array", "items": {"$ref": "#/components/schemas/FeedbackLabel"}},
                    {"type": "object", "required": ["labels"], "properties": {
                        "deployment": {"type": "string"},
                        "labels": {"type": "array", "items": {
                            "$ref": "#/components/schemas/FeedbackLabel"}}}}]},
                "FeedbackResponse": {"type": "object", "properties": {
                    "added": {"type": "integer"}, "superseded": {"type": "integer",
                    "description": "new labels for predictions that had one already"}}},
                "Error": {"type": "object", "required": ["error"],
                          "properties": {"error": {"type": "string"}}},
                "Status": {"type": "object"},
                "ServerMetadata": {"type": "object", "properties": {
                    "name": {"type": "string"}, "version": {"type": "string"},
                    "extensions": {"type": "array", "items": {"type": "string"}}}},
                "ModelMetadata": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "versions": {"type": "array", "items": {"type": "string"}},
                    "platform": {"type": "string"},
                    "inputs": {"type": "array", "items": {"type": "object"}},
                    "outputs": {"type": "array", "items": {"type": "object"}}}},
                "Tensor": tensor,
                "InferenceRequest": {"type": "object", "required": ["inputs"], "properties": {
                    "id": {"type": "string"}, "parameters": {"type": "object"},
                    "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/Tensor"}},
                    "outputs": {"type": "array", "items": {"type": "object"}}}},
                "InferenceResponse": {"type": "object", "properties": {
                    "model_name": {"type": "string"}, "model_version": {"type": "string"},
                    "id": {"type": "string"},
                    "outputs": {"type": "array",
                                "items": {"$ref": "#/components/schemas/Tensor"}}}},
                "RecordsRequest": {"oneOf": [
                    {"type": "array", "items": {"type": "object"}},
                    {"type": "object", "required": ["records"], "properties": {
                        "records": {"type": "array", "items": {"type": "object"}},
                        "deployment": {"type": "string"}, "key": {"type": "string"},
                        "id": {"type": "string"}, "event_time": {}}}]},
                "RecordsResponse": {"type": "object", "properties": {
                    "request_id": {"type": "string"}, "deployment": {"type": "string"},
                    "model": {"type": "string"}, "version": {"type": "integer"},
                    "route": {"type": "string"},
                    "predictions": {"type": "array", "items": {"type": "object"}}}},
            },
        },
    }
