"""Every way a crawl job can end. Each job records exactly one of these."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    # the page was fetched and read
    ACCEPTED = "accepted"
    QUARANTINED = "quarantined"
    BLOCKED = "blocked"
    NO_PRICE = "no_price"
    # the page was not fetched, or not completely
    ROBOTS_DISALLOWED = "robots_disallowed"
    #: robots.txt answered 5xx or 429, or could not be reached: RFC 9309 says to fetch
    #: nothing from the site until it can be read again.
    ROBOTS_UNREACHABLE = "robots_unreachable"
    OFF_DOMAIN = "off_domain"
    PRIVATE_ADDRESS = "private_address"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    NETWORK_ERROR = "network_error"
    BAD_RESPONSE = "bad_response"
    HTTP_ERROR = "http_error"
    SERVER_ERROR = "server_error"
    RATE_LIMITED = "rate_limited"
    # the job itself could not run
    UNKNOWN_LISTING = "unknown_listing"
    UNKNOWN_ITEM = "unknown_item"
    DEAD_LETTER = "dead_letter"


#: Worth another attempt after a pause: the server or the network may recover.
RETRYABLE = frozenset(
    {Outcome.TIMEOUT, Outcome.NETWORK_ERROR, Outcome.SERVER_ERROR, Outcome.RATE_LIMITED}
)

#: Failures that bring a listing's next crawl forward: those above, and a robots.txt that
#: could not be read (it is not retried within the job, since the answer is remembered
#: for ``robots_unreachable_seconds``).
RETRY_SOONER = RETRYABLE | {Outcome.ROBOTS_UNREACHABLE}
