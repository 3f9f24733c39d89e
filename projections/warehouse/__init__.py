"""Warehouse adapters (chdb, clickhouse-connect) behind one Protocol."""

from projections.warehouse.base import QueryResult, Warehouse

__all__ = ["QueryResult", "Warehouse"]
