"""The client commands' table layout: aligned columns, numbers to the right, `-` for missing cells."""

from __future__ import annotations

from strom.commands.table import render_table


def test_columns_align_and_numbers_align_right() -> None:
    table = render_table(["TOPIC", "PARTITION", "LAG"], [["orders", 0, 12345], ["payments-eu", 11, 7]])
    assert table.splitlines() == [
        "TOPIC        PARTITION    LAG",
        "orders               0  12345",
        "payments-eu         11      7",
    ]


def test_missing_cells_print_as_a_dash_and_lines_have_no_trailing_blanks() -> None:
    table = render_table(["GROUP", "OFFSET", "OWNER"], [["g", None, None], ["group-2", 5, "consumer-1"]])
    assert table.splitlines() == [
        "GROUP    OFFSET  OWNER",
        "g             -  -",
        "group-2       5  consumer-1",
    ]


def test_an_empty_table_is_just_its_header() -> None:
    assert render_table(["GROUP", "STATE"], []) == "GROUP  STATE"
