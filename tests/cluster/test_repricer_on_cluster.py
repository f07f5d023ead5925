"""The repricer's tests that run through the store, on a Redis Cluster of 3 masters."""

from tests.repricer.test_columnar import (  # noqa: F401
    test_the_fast_lane_publishes_what_the_single_path_would,
)
from tests.repricer.test_reprice import (  # noqa: F401
    test_a_full_reprice_publishes_every_sku_as_both_paths_price_it,
    test_a_quarantined_offer_leaves_the_last_accepted_one_in_force,
    test_an_override_is_published_through_the_pricer,
    test_an_unchanged_single_window_is_settled_by_the_vectorised_path,
)
from tests.repricer.test_worker import *  # noqa: F403
