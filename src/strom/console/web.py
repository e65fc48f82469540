"""The console's HTTP side: routes, page rendering and the answer to bad input (aiohttp, Jinja2 templates).

Pages are plain server-rendered HTML with one small script (`static/console.js`) that refreshes the parts
marked `data-live` while a page is open; there is no JavaScript build. Every cluster call runs on a worker
thread, so a slow cluster delays only its own page. A form that is refused (FormError before the cluster is
asked, ClusterError when the cluster says no) is shown again with the message above it and status 400;
nothing was changed. Successful forms redirect (POST, then GET) with a line saying what was done. With a
schema registry, the schemas pages read it (RegistryError: the registry's message on the page).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web
from confluent_kafka.admin import OffsetSpec

from strom.console import forms
from strom.console.cluster import Cluster
from strom.console.errors import ClusterError, ConsoleError, FormError, RegistryError
from strom.console.history import Series, chart_points
from strom.console.records import Browse, Records
from strom.console.registry import Registry

TOPICS_PER_PAGE = 50
GROUPS_PER_PAGE = 100
SUBJECTS_PER_PAGE = 50
SCHEMA_TYPES = ("AVRO", "JSON", "PROTOBUF")


class Console:
    """The web app over one cluster: `Console(cluster, records).app()` is an aiohttp Application."""

    def __init__(self, cluster: Cluster, records: Records) -> None:
        self.cluster = cluster
        self.records = records
        self.lag = Series()
        self.ends = Series()
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("strom.console", "templates"),
            autoescape=True,
        )

    def app(self) -> web.Application:
        app = web.Application()
        static = resources.files("strom.console") / "static"
        app.router.add_static("/static", str(static))
        app.add_routes(
            [
                web.get("/", self.overview),
                web.get("/topics", self.topics),
                web.post("/topics", self.create_topic),
                web.get("/topics/{name}", self.topic),
                web.post("/topics/{name}/config", self.alter_config),
                web.post("/topics/{name}/delete", self.delete_topic),
                web.get("/topics/{name}/messages", self.messages),
                web.post("/topics/{name}/messages", self.produce),
                web.get("/groups", self.groups),
                web.get("/groups/{group}", self.group),
                web.post("/groups/{group}/reset", self.reset_offsets),
                web.get("/schemas", self.schemas),
                web.get("/schemas/{subject}", self.subject),
                web.post("/schemas/{subject}/check", self.check_schema),
            ]
        )
        return app

    # --- rendering ----------------------------------------------------------------------------------

    def render(self, request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
        context.setdefault("error", None)
        context.setdefault("form", {})
        context["done"] = request.query.get("done")
        context["path"] = request.path
        context["live"] = request.method == "GET"
        context["bootstrap"] = self.cluster.bootstrap
        context["registry"] = self.records.registry is not None
        html = self.templates.get_template(template).render(**context)
        return web.Response(text=html, content_type="text/html", status=status)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    def failed(self, request: web.Request, error: ConsoleError) -> web.Response:
        """A page that could not be shown: 404 for something that does not exist, else 502 (the cluster)."""
        status = 404 if "does not exist" in str(error) else 502
        return self.render(request, "error.html", status=status, error=str(error))

    @staticmethod
    def redirect(path: str, done: str, **query: Any) -> web.HTTPSeeOther:
        return web.HTTPSeeOther(f"{path}?{urlencode({**query, 'done': done})}")

    # --- overview -----------------------------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.Response:
        try:
            overview = await self.call(self.cluster.overview)
            groups = await self.call(self.cluster.groups)
        except ConsoleError as error:
            return self.failed(request, error)
        return self.render(request, "overview.html", overview=overview, groups=groups)

    # --- topics -------------------------------------------------------------------------------------

    async def topics(
        self, request: web.Request, error: str | None = None, form: dict[str, str] | None = None
    ) -> web.Response:
        query = request.query.get("q", "")
        try:
            page_number = forms.optional_number(request.query, "page", minimum=1) or 1
            page = await self.call(self.cluster.topic_page, query, page_number, TOPICS_PER_PAGE)
        except FormError as bad:
            return self.render(request, "error.html", status=400, error=str(bad))
        except ConsoleError as failure:
            return self.failed(request, failure)
        for row in page.rows:
            self.ends.add(row.name, row.end)
        return self.render(
            request,
            "topics.html",
            rates={row.name: self.ends.rate(row.name) for row in page.rows},
            status=400 if error else 200,
            page=page,
            q=query,
            error=error,
            form=form or {},
        )

    async def create_topic(self, request: web.Request) -> web.StreamResponse:
        form = await _form(request)
        try:
            name = forms.topic_name(str(form.get("name", "")))
            partitions = forms.whole_number(form, "partitions", minimum=1, maximum=10_000)
            configs = forms.config_lines(str(form.get("configs", "")))
            await self.call(self.cluster.create_topic, name, partitions, configs)
        except ConsoleError as error:
            return await self.topics(request, error=str(error), form=form)
        raise self.redirect(f"/topics/{name}", f"Created topic {name} with {partitions} partitions.")

    async def topic(
        self, request: web.Request, error: str | None = None, form: dict[str, str] | None = None
    ) -> web.Response:
        name = request.match_info["name"]
        try:
            topic = await self.call(self.cluster.topic, name)
        except ConsoleError as failure:
            return self.failed(request, failure)
        self.ends.add(name, sum(p.end for p in topic.partitions))
        return self.render(
            request,
            "topic.html",
            status=400 if error else 200,
            topic=topic,
            rate=self.ends.rate(name),
            error=error,
            form=form or {},
        )

    async def alter_config(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        form = await _form(request)
        key = str(form.get("key", "")).strip()
        reset = form.get("action") == "reset"
        try:
            if not key:
                raise FormError("choose the config to change")
            value = None if reset else str(form.get("value", "")).strip()
            await self.call(self.cluster.alter_topic_config, name, key, value)
        except ConsoleError as error:
            return await self.topic(request, error=str(error), form=form)
        done = f"Reset {key} to its default." if reset else f"Set {key} to {value}."
        raise self.redirect(f"/topics/{name}", done)

    async def delete_topic(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        form = await _form(request)
        try:
            if form.get("confirm") != name:
                raise FormError(f"type the topic's name, {name}, to confirm that it is to be deleted")
            await self.call(self.cluster.delete_topic, name)
        except ConsoleError as error:
            return await self.topic(request, error=str(error), form=form)
        raise self.redirect("/topics", f"Deleted topic {name}.")

    # --- messages -----------------------------------------------------------------------------------

    async def messages(
        self, request: web.Request, error: str | None = None, form: dict[str, str] | None = None
    ) -> web.Response:
        name = request.match_info["name"]
        query = request.query
        try:
            topic = await self.call(self.cluster.topic, name)
        except ConsoleError as failure:
            return self.failed(request, failure)
        browse = None
        page = None
        problem = error
        try:
            browse = Browse(
                topic=name,
                partition=forms.optional_number(
                    query, "partition", minimum=0, maximum=len(topic.partitions) - 1
                )
                or 0,
                offset=forms.optional_number(query, "offset", minimum=0),
                time_ms=forms.moment_ms(query, "time"),
                newest_first=query.get("order", "newest") != "oldest",
                key=query.get("key", ""),
                text=query.get("text", ""),
                limit=forms.optional_number(query, "limit", minimum=1, maximum=500) or 50,
            )
            page = await self.call(self.records.browse, browse)
        except ConsoleError as failure:
            problem = problem or str(failure)
        return self.render(
            request,
            "messages.html",
            status=400 if problem else 200,
            topic=topic,
            browse=browse,
            page=page,
            query=dict(query),
            error=problem,
            form=form or {},
            more=_more_link(request, page, browse),
        )

    async def produce(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        form = await _form(request)
        try:
            partition = forms.optional_number(form, "partition", minimum=0)
            key = str(form.get("key", ""))
            headers = forms.header_lines(str(form.get("headers", "")))
            written = await self.call(
                self.records.produce, name, partition, key or None, str(form.get("value", "")), headers
            )
        except ConsoleError as error:
            return await self.messages(request, error=str(error), form=form)
        where, offset = written
        raise self.redirect(
            f"/topics/{name}/messages",
            f"Produced to partition {where} at offset {offset}.",
            partition=where,
            order="newest",
        )

    # --- consumer groups ----------------------------------------------------------------------------

    async def groups(self, request: web.Request) -> web.Response:
        query = request.query.get("q", "")
        try:
            page_number = forms.optional_number(request.query, "page", minimum=1) or 1
            groups = await self.call(self.cluster.groups)
        except FormError as bad:
            return self.render(request, "error.html", status=400, error=str(bad))
        except ConsoleError as error:
            return self.failed(request, error)
        matching = [g for g in groups if query.lower() in g.group_id.lower()]
        pages = max(1, -(-len(matching) // GROUPS_PER_PAGE))
        page_number = min(page_number, pages)
        shown = matching[(page_number - 1) * GROUPS_PER_PAGE : page_number * GROUPS_PER_PAGE]
        return self.render(
            request,
            "groups.html",
            groups=shown,
            total=len(matching),
            page=page_number,
            pages=pages,
            q=query,
        )

    async def group(
        self,
        request: web.Request,
        error: str | None = None,
        form: dict[str, str] | None = None,
        preview: Any = None,
    ) -> web.Response:
        group_id = request.match_info["group"]
        try:
            group = await self.call(self.cluster.group, group_id)
        except ConsoleError as failure:
            return self.failed(request, failure)
        self.lag.add(group_id, group.total_lag)
        samples = self.lag.samples(group_id)
        return self.render(
            request,
            "group.html",
            status=400 if error else 200,
            group=group,
            topics=sorted({p.topic for p in group.partitions}),
            chart=chart_points(samples),
            peak=max((v for _, v in samples), default=0),
            error=error,
            form=form or {},
            preview=preview,
        )

    # --- schemas ------------------------------------------------------------------------------------

    def registry(self) -> Registry:
        if self.records.registry is None:
            raise RegistryError("no schema registry: start the console with --registry URL", 404)
        return self.records.registry

    async def schemas(self, request: web.Request) -> web.Response:
        query = request.query.get("q", "")
        try:
            page_number = forms.optional_number(request.query, "page", minimum=1) or 1
            subjects = await self.call(self.registry().subjects)
        except FormError as bad:
            return self.render(request, "error.html", status=400, error=str(bad))
        except RegistryError as error:
            return self.render(request, "error.html", status=error.status, error=str(error))
        matching = [s for s in subjects if query.lower() in s.lower()]
        pages = max(1, -(-len(matching) // SUBJECTS_PER_PAGE))
        page_number = min(page_number, pages)
        shown = matching[(page_number - 1) * SUBJECTS_PER_PAGE : page_number * SUBJECTS_PER_PAGE]
        return self.render(
            request,
            "schemas.html",
            subjects=shown,
            total=len(matching),
            page=page_number,
            pages=pages,
            q=query,
        )

    async def subject(
        self,
        request: web.Request,
        error: str | None = None,
        form: dict[str, str] | None = None,
        verdict: tuple[bool, list[str]] | None = None,
    ) -> web.Response:
        name = request.match_info["subject"]
        try:
            wanted = forms.optional_number(request.query, "version", minimum=1)
            registry = self.registry()
            versions = await self.call(registry.versions, name)
            shown = await self.call(registry.version, name, wanted or "latest")
            level = await self.call(registry.compatibility_level, name)
        except FormError as bad:
            return self.render(request, "error.html", status=400, error=str(bad))
        except RegistryError as failure:
            return self.render(request, "error.html", status=failure.status, error=str(failure))
        return self.render(
            request,
            "schema.html",
            status=400 if error else 200,
            subject=name,
            versions=versions,
            shown=shown,
            level=level,
            types=SCHEMA_TYPES,
            error=error,
            form=form or {"type": shown.schema_type},
            verdict=verdict,
        )

    async def check_schema(self, request: web.Request) -> web.Response:
        """Ask the registry whether a pasted schema may be registered under the subject; nothing is stored."""
        name = request.match_info["subject"]
        form = await _form(request)
        try:
            schema = str(form.get("schema", "")).strip()
            if not schema:
                raise FormError("paste a schema to check")
            kind = str(form.get("type", "AVRO"))
            if kind not in SCHEMA_TYPES:
                raise FormError(f"schema type must be one of {', '.join(SCHEMA_TYPES)}, got {kind!r}")
            verdict = await self.call(self.registry().check, name, schema, kind)
        except ConsoleError as error:
            return await self.subject(request, error=str(error), form=form)
        return await self.subject(request, form=form, verdict=verdict)

    async def reset_offsets(self, request: web.Request) -> web.StreamResponse:
        """Step one shows the offsets a reset would commit; step two (`confirm=yes`) commits them."""
        group_id = request.match_info["group"]
        form = await _form(request)
        try:
            topic = forms.topic_name(str(form.get("topic", "")))
            target = str(form.get("to", ""))
            spec: OffsetSpec | int
            if target == "earliest":
                spec = OffsetSpec.earliest()
            elif target == "latest":
                spec = OffsetSpec.latest()
            elif target == "time":
                moment = forms.moment_ms(form, "time")
                if moment is None:
                    raise FormError("time is required to reset to a time")
                spec = OffsetSpec.for_timestamp(moment)
            elif target == "offset":
                spec = forms.whole_number(form, "offset", minimum=0)
            else:
                raise FormError("choose where to reset to: earliest, latest, a time or an offset")
            group = await self.call(self.cluster.group, group_id)
            if group.members:
                raise ClusterError(
                    f"group {group_id!r} has {len(group.members)} active member(s); stop its consumers "
                    "before resetting its offsets"
                )
            targets = await self.call(self.cluster.reset_targets, group, topic, spec)
            if form.get("confirm") != "yes":
                return await self.group(request, form=form, preview={"topic": topic, "targets": targets})
            await self.call(self.cluster.commit_offsets, group_id, topic, {p: new for p, _, new in targets})
        except ConsoleError as error:
            return await self.group(request, error=str(error), form=form)
        raise self.redirect(f"/groups/{group_id}", f"Reset the offsets of {group_id} on {topic}.")


async def _form(request: web.Request) -> dict[str, str]:
    """The posted form's fields as text (the console's forms upload no files)."""
    return {name: str(value) for name, value in (await request.post()).items()}


def _more_link(request: web.Request, page: Any, browse: Browse | None) -> str | None:
    """The URL continuing a browse where this page stopped, or None at the partition's edge."""
    if page is None or browse is None or page.resume_at is None:
        return None
    query = {k: v for k, v in request.query.items() if k not in ("offset", "time", "done")}
    query["offset"] = str(page.resume_at)
    query["order"] = "newest" if browse.newest_first else "oldest"
    return f"{request.path}?{urlencode(query)}"
