"""Schemathesis hooks for mcgate's controller API.

JSON Schema cannot relate two fields, so two IGMP timer rules of `POST /v1/domains`
(`DomainSpec.igmp_settings`) are stated in the schema's descriptions and here, where the
generator is told them, instead of being dropped from the server:

- the query response interval must be shorter than the query interval (RFC 3376
  section 8.3);
- IGMPv2's Max Response Time is an 8-bit count of tenths of a second (RFC 2236 section
  2.2), so with `igmp: v2` (the default) both response intervals are at most 25500 ms.

A third rule relates a group to its addresses: a static member's or source's
`address`, a filter's `sources` and a membership's `reporters` must be of the group's
address family (IPv4 with an IPv4 group, IPv6 with an IPv6 one), which the schema's
`ip` formats cannot say either; and an IPv6 host address is neither `::` nor `::1`,
which its pattern does not exclude (the IPv4 one does exclude 0.0.0.0 and 127/8).

A generated body that breaks only these rules is not a valid request, so it is dropped
from the cases meant to be valid (in every phase: examples, coverage, fuzzing,
stateful).

`GET /v1/domains/{name}/traffic?watch=true` answers with server-sent events that never
end while the domain exists; Schemathesis reads whole bodies, so those cases are dropped
too (crates/controller/tests/api.rs and the browser tests read the stream).
"""

import ipaddress

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


def family(address):
    """4 or 6 for an address string, None for anything else."""
    if not isinstance(address, str):
        return None
    return 6 if ":" in address else 4


def mixes_families(body):
    """Whether a static member or source body or a membership report breaks the
    address rules: an `address` of `::` or `::1`, or a group's address, filter sources
    or reporters of another family than the group."""
    if isinstance(body, list):
        return any(mixes_families(b) for b in body)
    if not isinstance(body, dict):
        return False
    if mixes_families(body.get("entries")):
        return True
    group = family(body.get("group"))
    if group is None:
        return False
    address = body.get("address")
    try:
        a = ipaddress.ip_address(address) if isinstance(address, str) else None
    except ValueError:
        a = None
    if a is not None and (a.is_unspecified or a.is_loopback):
        return True
    others = [address]
    flt = body.get("filter")
    if isinstance(flt, dict) and isinstance(flt.get("sources"), list):
        others += flt["sources"]
    if isinstance(body.get("reporters"), list):
        others += body["reporters"]
    return any(family(a) not in (None, group) for a in others)


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
    """Drops the cases meant to be valid that break only the IGMP timer rules or the
    address-family rule, and the endless event streams."""
    if is_endless_watch(case):
        return False
    if is_positive(case) and mixes_families(case.body):
        return False
    if case.operation.path != "/v1/domains" or case.method.upper() != "POST":
        return True
    return not (is_positive(case) and breaks_igmp_rules(case.body))
