"""The broker's handler table: every served version decodes, and docs/protocol.md lists the same ranges."""

from __future__ import annotations

import re
from pathlib import Path

from strom.broker.handlers import ADVERTISED, HANDLERS
from strom.protocol.api_keys import ApiKey
from strom.protocol.codec import request_class, response_class

_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_every_served_version_has_a_request_and_response_schema() -> None:
    for key, spec in HANDLERS.items():
        assert isinstance(key, ApiKey)
        for version in range(spec.min_version, spec.max_version + 1):
            request_class(key, version)
            response_class(key, version)


def test_docs_protocol_md_lists_the_advertised_and_served_ranges() -> None:
    row = r"^\| (\d+) \| (\w+) \| (\d+)(?:\u2013(\d+))? \| (\d+)(?:\u2013(\d+))? \|"  # key, name, ranges
    rows = re.findall(row, _DOC.read_text(), re.M)
    documented = {
        int(key): ((int(a_lo), int(a_hi or a_lo)), (int(s_lo), int(s_hi or s_lo)))
        for key, _name, a_lo, a_hi, s_lo, s_hi in rows
    }
    served = {key: (ADVERTISED[key], (spec.min_version, spec.max_version)) for key, spec in HANDLERS.items()}
    assert documented == served
