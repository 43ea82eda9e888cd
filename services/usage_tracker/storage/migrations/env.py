from services.common.alembic_env import run
from services.usage_tracker.storage.tables import metadata

run(metadata, version_table="alembic_version_usage")
