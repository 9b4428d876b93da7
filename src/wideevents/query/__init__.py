"""Honeycomb's query model over the local store, compiled to parameterized DuckDB SQL.

The CLI is a thin layer over this package: :class:`Store` opens (and ingests) the store;
:class:`Query` describes an aggregate; :func:`breakdown` explains a selection.
"""

from .breakdown import breakdown
from .engine import Store, StoreError, run_sql
from .model import Calc, Filter, Having, Order, Query, TimeRange
from .parse import QueryError, parse_calc, parse_filter, parse_having, parse_order

__all__ = [
    "Calc",
    "Filter",
    "Having",
    "Order",
    "Query",
    "QueryError",
    "Store",
    "StoreError",
    "TimeRange",
    "breakdown",
    "parse_calc",
    "parse_filter",
    "parse_having",
    "parse_order",
    "run_sql",
]
