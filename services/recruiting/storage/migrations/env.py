from services.common.alembic_env import run
from services.recruiting.storage.tables import metadata

run(metadata, version_table="alembic_version_recruiting")
