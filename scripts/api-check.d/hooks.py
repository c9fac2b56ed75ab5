"""Schemathesis hooks for mcgate's controller API.

JSON Schema cannot relate two fields, so two IGMP timer rules of `POST /v1/domains`
(`DomainSpec.igmp_settings`) are stated in the schema's descriptions and here, where the
generator is told them, instead of being dropped from the server:

- the query response interval must be shorter than the query interval (RFC 3376
  section 8.3);
- IGMPv2's Max Response Time is an 8-bit count of tenths of a second (RFC 2236 section
  2.2), so with `igmp: v2` (the default) both response intervals are at most 25500 ms.

A generated body that breaks only these rules is not a valid request, so it is dropped
from the cases meant to be valid (in every phase: examples, coverage, fuzzing,
stateful).

`GET /v1/domains/{name}/traffic?watch=true` answers with server-sent events that never
end while the domain exists; Schemathesis reads whole bodies, so those cases are dropped
too (crates/controller/tests/api.rs and the browser tests read the stream).
"""

import schemathesis

V2_MAX_RESPONSE_MS = 25_500


def breaks_igmp_rules(body):
    if not isinstance(body, dict):
        return False
    settings = body.get("igmp_settings")
    if not isinstance(settings, dict):
        return False
    interval = settings.get("query_interval_ms", 125_000)
    response = settings.get("query_response_interval_ms", 10_000)
    last = settings.get("last_member_interval_ms", 1_000)
    if not all(isinstance(v, (int, float)) for v in (interval, response, last)):
        return False
    if response >= interval:
        return True
    if body.get("igmp", "v2") == "v2" and max(response, last) > V2_MAX_RESPONSE_MS:
        return True
    return False


def is_positive(case):
    meta = getattr(case, "meta", None)
    mode = getattr(getattr(meta, "generation", None), "mode", None)
    # Without generation data the case is kept: it is judged as the schema says.
    return mode is not None and mode.is_positive


def is_endless_watch(case):
    query = case.query if isinstance(case.query, dict) else {}
    # The value is a boolean in the schema: a case may hold True or the string "true".
    watch = query.get("watch")
    return case.operation.path == "/v1/domains/{name}/traffic" and (
        watch is True or str(watch).lower() == "true"
    )


@schemathesis.hook
def filter_case(ctx, case):
    """Drops the cases meant to be valid that break only the IGMP timer rules, and the
    endless event streams."""
    if is_endless_watch(case):
        return False
    if case.operation.path != "/v1/domains" or case.method.upper() != "POST":
        return True
    return not (is_positive(case) and breaks_igmp_rules(case.body))
