"""Alembic environment: runs on the connection the service hands over (see db.upgrade)."""

from alembic import context

from marteau.service.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # the alembic command line: -x url=...
    from marteau.service.db import make_engine

    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    # alembic_config (marteau.service.db) always sets sqlalchemy.url
    connection = make_engine(url).connect()  # type: ignore[arg-type]

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTER TABLE goes by copy
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
