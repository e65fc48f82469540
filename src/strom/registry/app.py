"""The registry's HTTP face: Confluent Schema Registry's REST API v1 on aiohttp.

Handlers decode the path, query and body, call `SchemaRegistry`, and answer JSON with the content type
`application/vnd.schemaregistry.v1+json`. Every failure is `{"error_code": N, "message": "..."}` with
Confluent's status and code, including a body that is not JSON (400/400) and one larger than the limit
(422/42209): a bad request never takes the service down. Writes block on the `_schemas` topic, so they run in
a worker thread; reads answer from memory on the event loop. Booleans in queries arrive as `True`/`true` from
different clients, so they are parsed without regard to case.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from strom.registry.compatibility import SCHEMA_TYPES
from strom.registry.errors import (
    MalformedRequest,
    RegistryError,
    SchemaNotFound,
    SchemaTooLarge,
    SubjectNotFound,
    VersionNotFound,
)
from strom.registry.service import MAX_SCHEMA_CHARS, SchemaRegistry, parse_version

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
# Room for the largest accepted schema, JSON-escaped, plus the rest of the body; larger bodies are refused
# by aiohttp before they are read whole.
MAX_BODY_BYTES = 4 * MAX_SCHEMA_CHARS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


def respond(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type=CONTENT_TYPE)


@web.middleware
async def registry_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into Confluent's error body; unexpected ones are logged and answered 500/50001."""
    try:
        return await handler(request)
    except RegistryError as error:
        return respond({"error_code": error.error_code, "message": str(error)}, error.status)
    except web.HTTPRequestEntityTooLarge:
        return respond({"error_code": SchemaTooLarge.error_code, "message": "Request body too large"}, 422)
    except web.HTTPException as error:
        return respond({"error_code": error.status, "message": error.reason}, error.status)
    except Exception:
        logger.exception("unexpected failure serving %s %s", request.method, request.path)
        return respond({"error_code": 50001, "message": "Internal error; see the registry's log"}, 500)


def flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() == "true"


async def body_of(request: web.Request) -> Any:
    text = await request.text()
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError as error:
        raise MalformedRequest(f"Malformed JSON body: {error}") from None


def schema_id_of(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit():
        raise SchemaNotFound(f"Schema {text} not found")
    return int(text)


class RegistryApp:
    """Routes of the v1 API, bound to one `SchemaRegistry`."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry

    async def read(self, answer: Callable[..., T], *args: Any) -> T:
        """Answer from memory; on a miss, first catch up with the topic and ask again.

        Another registry may have just written what is asked for (a consumer fetching the id a producer
        registered elsewhere): a miss waits for the topic, so a schema registered on one registry is served
        by every other one. Hits answer at once, from a state at most one reader poll behind.
        """
        try:
            return answer(*args)
        except (SchemaNotFound, SubjectNotFound, VersionNotFound):
            await asyncio.to_thread(self.registry.topic.catch_up)
            return answer(*args)

    def build(self) -> web.Application:
        app = web.Application(middlewares=[registry_errors], client_max_size=MAX_BODY_BYTES)
        get, post, put, delete = web.get, web.post, web.put, web.delete
        app.add_routes(
            [
                get("/", self.root),
                get("/contexts", self.contexts),
                get("/schemas", self.schemas),
                get("/schemas/types", self.schema_types),
                get("/schemas/ids/{id}", self.schema_by_id),
                get("/schemas/ids/{id}/schema", self.raw_schema_by_id),
                get("/schemas/ids/{id}/subjects", self.subjects_of_id),
                get("/schemas/ids/{id}/versions", self.versions_of_id),
                get("/subjects", self.subjects),
                post("/subjects/{subject}", self.lookup),
                delete("/subjects/{subject}", self.delete_subject),
                get("/subjects/{subject}/versions", self.versions),
                post("/subjects/{subject}/versions", self.register),
                get("/subjects/{subject}/versions/{version}", self.version),
                get("/subjects/{subject}/versions/{version}/schema", self.raw_version),
                get("/subjects/{subject}/versions/{version}/referencedby", self.referenced_by),
                delete("/subjects/{subject}/versions/{version}", self.delete_version),
                post("/compatibility/subjects/{subject}/versions", self.check_all),
                post("/compatibility/subjects/{subject}/versions/{version}", self.check_version),
                get("/config", self.get_config),
                put("/config", self.put_config),
                delete("/config", self.delete_config),
                get("/config/{subject}", self.get_config),
                put("/config/{subject}", self.put_config),
                delete("/config/{subject}", self.delete_config),
                get("/mode", self.get_mode),
                put("/mode", self.put_mode),
                delete("/mode", self.delete_mode),
                get("/mode/{subject}", self.get_mode),
                put("/mode/{subject}", self.put_mode),
                delete("/mode/{subject}", self.delete_mode),
            ]
        )
        return app

    async def root(self, request: web.Request) -> web.Response:
        return respond({})

    async def contexts(self, request: web.Request) -> web.Response:
        return respond(["."])

    async def schema_types(self, request: web.Request) -> web.Response:
        return respond(list(SCHEMA_TYPES))

    async def schemas(self, request: web.Request) -> web.Response:
        prefix = request.query.get("subjectPrefix", "")
        deleted, latest_only = flag(request, "deleted"), flag(request, "latestOnly")
        return respond(self.registry.schemas(prefix, deleted, latest_only))

    async def schema_by_id(self, request: web.Request) -> web.Response:
        return respond(await self.read(self.registry.schema_by_id, schema_id_of(request)))

    async def raw_schema_by_id(self, request: web.Request) -> web.Response:
        return respond(
            json.loads((await self.read(self.registry.schema_by_id, schema_id_of(request)))["schema"])
        )

    async def subjects_of_id(self, request: web.Request) -> web.Response:
        return respond(
            await self.read(self.registry.subjects_of, schema_id_of(request), flag(request, "deleted"))
        )

    async def versions_of_id(self, request: web.Request) -> web.Response:
        return respond(
            await self.read(self.registry.versions_of, schema_id_of(request), flag(request, "deleted"))
        )

    async def subjects(self, request: web.Request) -> web.Response:
        prefix = request.query.get("subjectPrefix", "")
        deleted, deleted_only = flag(request, "deleted"), flag(request, "deletedOnly")
        return respond(self.registry.subjects(prefix, deleted, deleted_only))

    async def lookup(self, request: web.Request) -> web.Response:
        body = await body_of(request)
        subject = request.match_info["subject"]
        return respond(await self.read(self.registry.lookup, subject, body, flag(request, "deleted")))

    async def delete_subject(self, request: web.Request) -> web.Response:
        subject, permanent = request.match_info["subject"], flag(request, "permanent")
        return respond(await asyncio.to_thread(self.registry.delete_subject, subject, permanent))

    async def versions(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        deleted, deleted_only = flag(request, "deleted"), flag(request, "deletedOnly")
        return respond(await self.read(self.registry.subject_versions, subject, deleted, deleted_only))

    async def register(self, request: web.Request) -> web.Response:
        body = await body_of(request)
        return respond(await asyncio.to_thread(self.registry.register, request.match_info["subject"], body))

    async def version(self, request: web.Request) -> web.Response:
        version = parse_version(request.match_info["version"])
        subject = request.match_info["subject"]
        return respond(await self.read(self.registry.version, subject, version, flag(request, "deleted")))

    async def raw_version(self, request: web.Request) -> web.Response:
        version = parse_version(request.match_info["version"])
        subject = request.match_info["subject"]
        found = await self.read(self.registry.version, subject, version, flag(request, "deleted"))
        return respond(json.loads(found["schema"]))

    async def referenced_by(self, request: web.Request) -> web.Response:
        version = parse_version(request.match_info["version"])
        return respond(await self.read(self.registry.referenced_by, request.match_info["subject"], version))

    async def delete_version(self, request: web.Request) -> web.Response:
        version = parse_version(request.match_info["version"])
        subject, permanent = request.match_info["subject"], flag(request, "permanent")
        return respond(await asyncio.to_thread(self.registry.delete_version, subject, version, permanent))

    async def check_all(self, request: web.Request) -> web.Response:
        return await self._check(request, None)

    async def check_version(self, request: web.Request) -> web.Response:
        return await self._check(request, parse_version(request.match_info["version"]))

    async def _check(self, request: web.Request, version: int | None) -> web.Response:
        body = await body_of(request)
        subject = request.match_info["subject"]
        return respond(self.registry.compatibility_check(subject, version, body, flag(request, "verbose")))

    async def get_config(self, request: web.Request) -> web.Response:
        subject = request.match_info.get("subject")
        return respond(self.registry.config(subject, flag(request, "defaultToGlobal")))

    async def put_config(self, request: web.Request) -> web.Response:
        body = await body_of(request)
        subject = request.match_info.get("subject")
        return respond(await asyncio.to_thread(self.registry.set_config, subject, body))

    async def delete_config(self, request: web.Request) -> web.Response:
        subject = request.match_info.get("subject")
        return respond(await asyncio.to_thread(self.registry.delete_config, subject))

    async def get_mode(self, request: web.Request) -> web.Response:
        subject = request.match_info.get("subject")
        return respond(self.registry.mode(subject, flag(request, "defaultToGlobal")))

    async def put_mode(self, request: web.Request) -> web.Response:
        body = await body_of(request)
        subject, force = request.match_info.get("subject"), flag(request, "force")
        return respond(await asyncio.to_thread(self.registry.set_mode, subject, body, force))

    async def delete_mode(self, request: web.Request) -> web.Response:
        subject = request.match_info.get("subject")
        return respond(await asyncio.to_thread(self.registry.delete_mode, subject))
