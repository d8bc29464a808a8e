"""The structural rule: private and network data live in separate tables, and nothing on the
network side can reach a private row through the schema."""

import ast
from pathlib import Path

from storage.network.tables import NETWORK_METADATA
from storage.private.tables import PRIVATE_METADATA

ROOT = Path(__file__).resolve().parents[2]


def test_table_sets_are_disjoint():
    assert set(PRIVATE_METADATA.tables).isdisjoint(NETWORK_METADATA.tables)
    assert {"principals", "principal_tokens", "private_threads", "private_messages", "knowledge_items"} <= set(
        PRIVATE_METADATA.tables)
    assert {"networks", "network_events", "outbox", "peer_keys", "shared_threads"} <= set(NETWORK_METADATA.tables)


def test_no_network_table_references_a_private_table():
    for table in NETWORK_METADATA.tables.values():
        for fk in table.foreign_keys:
            assert fk.column.table.name in NETWORK_METADATA.tables, (table.name, fk.target_fullname)


def test_network_tables_module_does_not_import_private_tables():
    tree = ast.parse((ROOT / "storage" / "network" / "tables.py").read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not any(name.startswith("storage.") for name in imported), imported
