"""Form fields turned into checked values, or a FormError whose message names the field and the rule.

Everything a form sends is checked here before the cluster is asked, so bad input (a negative offset, a topic
name Kafka refuses, a config line without `=`) changes nothing and is answered on the page in words.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping

from strom.console.errors import FormError

# Kafka's rule (org.apache.kafka.common.internals.Topic): ASCII letters, digits, '.', '_', '-', at most 249.
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def topic_name(value: str) -> str:
    name = value.strip()
    if not name:
        raise FormError("a topic name is required")
    if name in (".", "..") or not _TOPIC_NAME.fullmatch(name):
        raise FormError(
            f"{name!r} is not a valid topic name: use 1 to 249 letters, digits, '.', '_' or '-' "
            "(and not '.' or '..' alone)"
        )
    return name


def whole_number(form: Mapping[str, str], field: str, *, minimum: int, maximum: int | None = None) -> int:
    """A required integer field within [minimum, maximum]."""
    text = form.get(field, "").strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise FormError(f"{field} must be a whole number, got {text!r}")
    number = int(text)
    if number < minimum:
        raise FormError(f"{field} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise FormError(f"{field} must be at most {maximum}, got {number}")
    return number


def optional_number(
    form: Mapping[str, str], field: str, *, minimum: int, maximum: int | None = None
) -> int | None:
    """An integer field that may be left empty (None)."""
    if not form.get(field, "").strip():
        return None
    return whole_number(form, field, minimum=minimum, maximum=maximum)


def moment_ms(form: Mapping[str, str], field: str) -> int | None:
    """A time field: ISO 8601 (UTC unless it says otherwise) or epoch milliseconds; empty is None."""
    text = form.get(field, "").strip()
    if not text:
        return None
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FormError(
            f"{field} must be a time such as 2026-01-31T12:00:00Z or milliseconds since 1970, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def config_lines(text: str) -> dict[str, str]:
    """`key=value` lines (blank lines skipped) as a mapping; a line without `=` is refused with its number."""
    configs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise FormError(f"config line {number} must be key=value, got {line.strip()!r}")
        configs[key.strip()] = value.strip()
    return configs


def header_lines(text: str) -> list[tuple[str, str]]:
    """`name: value` lines as record headers, in order (a name may repeat, as Kafka allows)."""
    headers = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise FormError(f"header line {number} must be name: value, got {line.strip()!r}")
        headers.append((name.strip(), value.strip()))
    return headers
