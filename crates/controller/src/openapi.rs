//! The OpenAPI 3.0 document served at `GET /v1/openapi.json`, written by hand from the
//! types in `mcgate_domain::api` (a test checks that every route the router serves is in
//! it, and every schema it names is defined).

use serde_json::{Value, json};

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn arr(v: Value) -> Value {
    json!({ "type": "array", "items": v })
}

fn ipv4() -> Value {
    json!({ "type": "string", "format": "ipv4" })
}

fn nullable(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        if o.contains_key("$ref") {
            return json!({ "allOf": [v], "nullable": true });
        }
        o.insert("nullable".into(), json!(true));
    }
    v
}

fn obj(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props })
}

fn body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn ok(code: &str, desc: &str, schema: Option<Value>) -> (String, Value) {
    let v = match schema {
        Some(s) => {
            json!({ "description": desc, "content": { "application/json": { "schema": s } } })
        }
        None => json!({ "description": desc }),
    };
    (code.to_string(), v)
}

fn responses(list: Vec<(String, Value)>, errors: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in list {
        m.insert(k, v);
    }
    for e in errors {
        m.insert(
            (*e).to_string(),
            json!({ "description": error_text(e), "content": { "application/json": { "schema": r("ApiError") } } }),
        );
    }
    Value::Object(m)
}

fn error_text(code: &str) -> &'static str {
    match code {
        "400" => "Malformed JSON, a wrong type or a value out of range; `field` names it",
        "404" => "Unknown domain, agent, member or source",
        "409" => "Conflict with existing state, or a stale agent session (register again)",
        "413" => "The body is too large",
        _ => "Error",
    }
}

fn path_param(name: &str, desc: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": desc, "schema": { "type": "string" } })
}

fn query_param(name: &str, desc: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": desc, "schema": schema })
}

fn op(summary: &str, params: Vec<Value>, req: Option<Value>, resp: Value) -> Value {
    let mut o = json!({ "summary": summary, "parameters": params, "responses": resp });
    if let Some(b) = req {
        o["requestBody"] = b;
    }
    o
}

fn schemas() -> Value {
    let filter = obj(
        &["mode", "sources"],
        json!({
            "mode": { "type": "string", "enum": ["include", "exclude"] },
            "sources": arr(ipv4()),
        }),
    );
    let igmp_mode = json!({ "type": "string", "enum": ["v2", "v3", "off"] });
    let igmp_settings = obj(
        &[],
        json!({
            "robustness": { "type": "integer", "minimum": 1, "maximum": 7, "default": 2 },
            "query_interval_ms": { "type": "integer", "default": 125000 },
            "query_response_interval_ms": { "type": "integer", "default": 10000 },
            "last_member_interval_ms": { "type": "integer", "default": 1000 },
            "last_member_count": nullable(json!({ "type": "integer" })),
            "fast_leave": { "type": "boolean", "default": false },
        }),
    );
    let domain_spec = obj(
        &["name"],
        json!({
            "name": { "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$" },
            "vni": nullable(json!({ "type": "integer", "minimum": 1, "maximum": 16777215 })),
            "igmp": r("IgmpMode"),
            "static_sources": { "type": "boolean", "default": false },
            "igmp_settings": r("IgmpSettings"),
        }),
    );
    let domain = obj(
        &[
            "name",
            "vni",
            "igmp",
            "static_sources",
            "igmp_settings",
            "subnets",
            "hosts",
        ],
        json!({
            "name": { "type": "string" },
            "vni": { "type": "integer" },
            "igmp": r("IgmpMode"),
            "static_sources": { "type": "boolean" },
            "igmp_settings": r("IgmpSettings"),
            "subnets": arr(json!({ "type": "string", "example": "10.0.2.0/24" })),
            "hosts": arr(json!({ "type": "string" })),
        }),
    );
    let assoc = obj(
        &[],
        json!({
            "subnet": nullable(json!({ "type": "string", "example": "10.0.2.0/24" })),
            "host": nullable(json!({ "type": "string" })),
        }),
    );
    let member = obj(
        &["group", "host"],
        json!({
            "group": ipv4(), "host": { "type": "string" },
            "interface": nullable(json!({ "type": "string" })),
            "address": nullable(ipv4()),
        }),
    );
    let source = obj(
        &["group", "address"],
        json!({
            "group": ipv4(), "address": ipv4(),
            "host": nullable(json!({ "type": "string" })),
            "interface": nullable(json!({ "type": "string" })),
        }),
    );
    let link = obj(
        &["name"],
        json!({ "name": { "type": "string" }, "address": nullable(ipv4()) }),
    );
    let registration = obj(
        &["host", "underlay"],
        json!({
            "host": { "type": "string" },
            "underlay": { "type": "string", "example": "10.0.2.10:4789" },
            "subnet": nullable(json!({ "type": "string" })),
            "links": arr(r("LinkInfo")),
            "dataplane": nullable(json!({ "type": "string" })),
        }),
    );
    let reply = obj(
        &["session", "lease_ms", "heartbeat_ms", "domains"],
        json!({
            "session": { "type": "integer" }, "lease_ms": { "type": "integer" },
            "heartbeat_ms": { "type": "integer" }, "domains": arr(json!({ "type": "string" })),
        }),
    );
    let heartbeat = obj(&["session"], json!({ "session": { "type": "integer" } }));
    let link_membership = obj(
        &["link", "group", "filter"],
        json!({
            "link": { "type": "string" }, "group": ipv4(),
            "filter": nullable(r("SourceFilter")),
            "reporters": arr(ipv4()),
        }),
    );
    let report = obj(
        &["session", "seq", "snapshot", "entries"],
        json!({
            "session": { "type": "integer" }, "seq": { "type": "integer" },
            "snapshot": { "type": "boolean" }, "entries": arr(r("LinkMembership")),
        }),
    );
    let ack = obj(&["seq"], json!({ "seq": { "type": "integer" } }));
    let peer = obj(
        &["host", "underlay"],
        json!({ "host": { "type": "string" }, "underlay": { "type": "string" } }),
    );
    let host_member = obj(
        &["host", "group", "filter"],
        json!({ "host": { "type": "string" }, "group": ipv4(), "filter": r("SourceFilter") }),
    );
    let domain_state = obj(
        &[
            "domain",
            "peers",
            "members",
            "static_members",
            "static_sources",
        ],
        json!({
            "domain": r("Domain"), "peers": arr(r("Peer")), "members": arr(r("HostMember")),
            "static_members": arr(r("StaticMemberSpec")),
            "static_sources": arr(r("StaticSourceSpec")),
        }),
    );
    let change = json!({
        "type": "object",
        "description": "One change; `kind` is domain | domain_removed | peer_up | peer_down | member | static_member | static_source, with the fields of that kind (see docs/api.md).",
        "required": ["kind"],
        "properties": {
            "kind": { "type": "string", "enum": ["domain", "domain_removed", "peer_up", "peer_down", "member", "static_member", "static_source"] },
            "domain": {}, "name": { "type": "string" }, "peer": r("Peer"),
            "host": { "type": "string" }, "group": ipv4(), "filter": nullable(r("SourceFilter")),
            "member": r("StaticMemberSpec"), "source": r("StaticSourceSpec"),
            "present": { "type": "boolean" },
        }
    });
    let stream_message = json!({
        "type": "object",
        "description": "One NDJSON line: `type` is snapshot (revision, domains), delta (revision, changes) or keepalive (revision).",
        "required": ["type", "revision"],
        "properties": {
            "type": { "type": "string", "enum": ["snapshot", "delta", "keepalive"] },
            "revision": { "type": "integer" },
            "domains": arr(r("DomainState")),
            "changes": arr(r("Change")),
        }
    });
    let member_type = json!({ "type": "string", "enum": ["igmp", "static"] });
    let group_entry = obj(
        &[
            "domain",
            "group",
            "host",
            "subnet",
            "interface",
            "address",
            "member",
            "source",
            "member_type",
            "source_type",
            "source_filter",
        ],
        json!({
            "domain": { "type": "string" }, "group": ipv4(), "host": { "type": "string" },
            "subnet": nullable(json!({ "type": "string" })),
            "interface": nullable(json!({ "type": "string" })),
            "address": nullable(ipv4()),
            "member": { "type": "boolean" }, "source": { "type": "boolean" },
            "member_type": nullable(r("MemberType")), "source_type": nullable(r("MemberType")),
            "source_filter": nullable(r("SourceFilter")),
        }),
    );
    let agent_info = obj(
        &[
            "host",
            "underlay",
            "subnet",
            "links",
            "domains",
            "state",
            "last_seen_ms",
            "memberships",
            "dataplane",
        ],
        json!({
            "host": { "type": "string" }, "underlay": { "type": "string" },
            "subnet": nullable(json!({ "type": "string" })), "links": arr(r("LinkInfo")),
            "domains": arr(json!({ "type": "string" })),
            "state": { "type": "string", "enum": ["up", "expired"] },
            "last_seen_ms": { "type": "integer" }, "memberships": { "type": "integer" },
            "dataplane": nullable(json!({ "type": "string" })),
        }),
    );
    let health = obj(
        &["status", "revision", "domains", "agents_up"],
        json!({
            "status": { "type": "string" }, "revision": { "type": "integer" },
            "domains": { "type": "integer" }, "agents_up": { "type": "integer" },
            "streams": { "type": "integer" }, "stream_overflows": { "type": "integer" },
        }),
    );
    let api_error = obj(
        &["error"],
        json!({ "error": { "type": "string" }, "field": nullable(json!({ "type": "string" })) }),
    );
    json!({
        "SourceFilter": filter, "IgmpMode": igmp_mode, "IgmpSettings": igmp_settings,
        "DomainSpec": domain_spec, "Domain": domain, "AssociationSpec": assoc,
        "StaticMemberSpec": member, "StaticSourceSpec": source, "LinkInfo": link,
        "AgentRegistration": registration, "RegistrationReply": reply, "Heartbeat": heartbeat,
        "LinkMembership": link_membership, "MembershipReport": report, "MembershipAck": ack,
        "Peer": peer, "HostMember": host_member, "DomainState": domain_state, "Change": change,
        "StreamMessage": stream_message, "MemberType": member_type, "GroupEntry": group_entry,
        "AgentInfo": agent_info, "Health": health, "ApiError": api_error,
    })
}

/// The document, as JSON text.
pub fn document() -> String {
    let name = || path_param("name", "Domain name");
    let host = || path_param("host", "Agent host name");
    let paths = json!({
        "/v1/healthz": { "get": op("Liveness and counters", vec![], None,
            responses(vec![ok("200", "Healthy", Some(r("Health")))], &[])) },
        "/v1/openapi.json": { "get": op("This document", vec![], None,
            responses(vec![ok("200", "OpenAPI 3 document", Some(json!({ "type": "object" })))], &[])) },
        "/v1/domains": {
            "post": op("Create a domain", vec![], Some(body(r("DomainSpec"))),
                responses(vec![ok("201", "Created", Some(r("Domain")))], &["400", "409", "413"])),
            "get": op("List domains", vec![], None,
                responses(vec![ok("200", "Every domain", Some(arr(r("Domain"))))], &[])),
        },
        "/v1/domains/{name}": {
            "get": op("Show a domain", vec![name()], None,
                responses(vec![ok("200", "The domain", Some(r("Domain")))], &["404"])),
            "delete": op("Delete a domain", vec![name()], None,
                responses(vec![ok("204", "Deleted", None)], &["404"])),
        },
        "/v1/domains/{name}/associations": {
            "post": op("Associate a subnet or a host (exactly one)", vec![name()], Some(body(r("AssociationSpec"))),
                responses(vec![ok("200", "The domain after", Some(r("Domain")))], &["400", "404", "409"])),
            "delete": op("Disassociate a subnet or a host", vec![name()], Some(body(r("AssociationSpec"))),
                responses(vec![ok("200", "The domain after", Some(r("Domain")))], &["400", "404"])),
        },
        "/v1/domains/{name}/members": {
            "post": op("Register a static member", vec![name()], Some(body(r("StaticMemberSpec"))),
                responses(vec![ok("201", "Registered", Some(r("StaticMemberSpec")))], &["400", "404", "409"])),
            "delete": op("Deregister a static member (matched on group, host, interface)", vec![name()], Some(body(r("StaticMemberSpec"))),
                responses(vec![ok("204", "Deregistered", None)], &["400", "404"])),
        },
        "/v1/domains/{name}/sources": {
            "post": op("Register a static source", vec![name()], Some(body(r("StaticSourceSpec"))),
                responses(vec![ok("201", "Registered", Some(r("StaticSourceSpec")))], &["400", "404", "409"])),
            "delete": op("Deregister a static source (matched on group, address)", vec![name()], Some(body(r("StaticSourceSpec"))),
                responses(vec![ok("204", "Deregistered", None)], &["400", "404"])),
        },
        "/v1/groups": { "get": op("Search the group table", vec![
                query_param("domain", "Only this domain", json!({ "type": "string" })),
                query_param("group", "Only this group", ipv4()),
                query_param("member", "Only member rows with this address", ipv4()),
                query_param("source", "Only source rows with this address", ipv4()),
                query_param("type", "Only igmp or static rows", r("MemberType")),
                query_param("host", "Only this host", json!({ "type": "string" })),
                query_param("subnet", "Only rows in this subnet", json!({ "type": "string" })),
            ], None,
            responses(vec![ok("200", "Matching rows", Some(arr(r("GroupEntry"))))], &["400", "404"])) },
        "/v1/agents": {
            "post": op("Register an agent (a new session each time)", vec![], Some(body(r("AgentRegistration"))),
                responses(vec![ok("200", "Registered", Some(r("RegistrationReply")))], &["400", "413"])),
            "get": op("List agents", vec![], None,
                responses(vec![ok("200", "Every agent", Some(arr(r("AgentInfo"))))], &[])),
        },
        "/v1/agents/{host}": { "delete": op("Deregister an agent", vec![host()], None,
            responses(vec![ok("204", "Deregistered", None)], &["404"])) },
        "/v1/agents/{host}/heartbeat": { "post": op("Renew the lease", vec![host()], Some(body(r("Heartbeat"))),
            responses(vec![ok("200", "Renewed", None)], &["400", "404", "409"])) },
        "/v1/agents/{host}/membership": { "post": op("Report membership changes or a snapshot", vec![host()], Some(body(r("MembershipReport"))),
            responses(vec![ok("200", "Applied (or already applied)", Some(r("MembershipAck")))], &["400", "404", "409", "413"])) },
        "/v1/agents/{host}/stream": { "get": op("Forwarding-state stream (NDJSON: snapshot or missed deltas, then deltas and keepalives)",
            vec![host(), query_param("since", "Resume after this revision", json!({ "type": "integer" }))], None,
            responses(vec![("200".to_string(), json!({ "description": "One StreamMessage per line",
                "content": { "application/x-ndjson": { "schema": r("StreamMessage") } } }))], &["400", "404", "409"])) },
    });
    let doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "mcgate controller API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Multicast domains, their associations and static members and sources, the agents and the forwarding state streamed to them. Every error is an ApiError."
        },
        "paths": paths,
        "components": { "schemas": schemas() },
    });
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if k == "$ref" {
                        out.push(v.as_str().unwrap_or_default().to_string());
                    } else {
                        refs(v, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_is_defined() {
        let doc: Value = serde_json::from_str(&document()).unwrap();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 20);
        for r in all {
            let name = r.trim_start_matches("#/components/schemas/");
            assert!(doc["components"]["schemas"].get(name).is_some(), "{r}");
        }
    }
}
