"""The store's tests, run again on a Redis Cluster of 3 masters (see conftest)."""

from tests.store.test_bulk_publish import *  # noqa: F403
from tests.store.test_store import *  # noqa: F403
from tests.store.test_writes import *  # noqa: F403
