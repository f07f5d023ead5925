"""The store's tests, run again on a Redis Cluster of 3 masters (see conftest)."""

from tests.demand.test_buckets import (  # noqa: F401
    test_a_duplicate_id_is_counted_once_even_in_a_later_batch,
    test_a_months_event_ids_take_a_fraction_of_the_sorted_set,
    test_an_id_counted_by_an_earlier_version_is_not_counted_again,
    test_event_ids_are_kept_per_week_until_the_retention_has_passed,
    test_events_past_the_retention_are_not_counted_and_old_buckets_pruned,
    test_late_events_land_in_their_own_hour_and_day,
)
from tests.store.test_audit_blocks import *  # noqa: F403
from tests.store.test_bulk_publish import *  # noqa: F403
from tests.store.test_offer_history import *  # noqa: F403
from tests.store.test_store import *  # noqa: F403
from tests.store.test_writes import *  # noqa: F403
