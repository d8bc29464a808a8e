"""Alembic environment. The node runs migrations itself (storage.migrations_runner), handing
a live connection in `config.attributes["connection"]`; there is no alembic.ini to keep in step.
"""

from alembic import context

from storage.network.tables import NETWORK_METADATA
from storage.private.tables import PRIVATE_METADATA
from storage.search import is_search_object

target_metadata = [PRIVATE_METADATA, NETWORK_METADATA]

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    include_object=lambda obj, name, type_, reflected, compare_to: not is_search_object(name),
)
with context.begin_transaction():
    context.run_migrations()
