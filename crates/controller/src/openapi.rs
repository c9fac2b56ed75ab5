//! The OpenAPI 3.1 document served at `GET /v1/openapi.json`, derived with `utoipa` from
//! the handlers of [`crate::routes`] and the message types of `mcgate_domain::api`, so it
//! cannot drift from what the server accepts: patterns, ranges and unknown-field rules
//! come from the same types the handlers decode (see `mcgate_domain::schema`).
//!
//! The answers every operation shares (a refused body or parameter, an unknown domain or
//! agent, an unsupported media type, a body over the limit, a store failure) are added by `CommonAnswers` rather than repeated on
//! each handler.

use mcgate_domain::api::*;
use mcgate_domain::schema;
use serde_json::{Value, json};
use utoipa::openapi::Required;
use utoipa::openapi::path::{HttpMethod, Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, RefOr, Response, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi};

use crate::{auth, auth_routes, routes, traffic};

/// What each parameter means, by place and name: the doc comments of [`DomainPath`],
/// [`HostPath`], `routes::StreamQuery` and `GroupQuery`, which utoipa drops when a
/// field's schema comes from `schema_with`.
const PARAMETERS: [(ParameterIn, &str, &str); 10] = [
    (ParameterIn::Path, "name", "Domain name."),
    (ParameterIn::Path, "host", "Agent host name."),
    (
        ParameterIn::Query,
        "since",
        "Resume after this revision (the last one the agent applied).",
    ),
    (ParameterIn::Query, "domain", "Only this domain."),
    (ParameterIn::Query, "group", "Only this group."),
    (
        ParameterIn::Query,
        "member",
        "Only member rows with this address.",
    ),
    (
        ParameterIn::Query,
        "source",
        "Only source rows with this address.",
    ),
    (
        ParameterIn::Query,
        "type",
        "Only rows of this member or source type.",
    ),
    (ParameterIn::Query, "host", "Only rows of this host."),
    (
        ParameterIn::Query,
        "subnet",
        "Only rows whose subnet is this one or whose address is inside it.",
    ),
];

/// The `{name}` of the domain routes.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DomainPath {
    /// Domain name.
    #[param(schema_with = schema::domain_name)]
    pub name: String,
}

/// The `{host}` of the agent routes.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct HostPath {
    /// Agent host name.
    #[param(schema_with = schema::host_name)]
    pub host: String,
}

/// The `{id}` of a token route.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenPath {
    /// Token or credential id (from `GET /v1/tokens`).
    #[param(pattern = "^[0-9a-f]{12}$", min_length = 12, max_length = 12)]
    pub id: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mcgate controller API",
        description = "Multicast domains, their associations and static members and sources, the agents and the forwarding state streamed to them. Every error is an ApiError. Request bodies are `application/json`. Every operation but healthz and this document needs `Authorization: Bearer TOKEN` (401 without a valid one, 403 for the wrong role or host); see docs/security.md."
    ),
    paths(
        routes::healthz,
        routes::openapi,
        routes::metrics,
        routes::create_domain,
        routes::list_domains,
        routes::show_domain,
        routes::delete_domain,
        routes::associate,
        routes::disassociate,
        routes::add_member,
        routes::remove_member,
        routes::add_source,
        routes::remove_source,
        routes::groups,
        routes::register,
        routes::agents,
        routes::deregister,
        routes::heartbeat,
        routes::membership,
        routes::stream,
        traffic::report_traffic,
        traffic::traffic,
        auth_routes::create_token,
        auth_routes::list_tokens,
        auth_routes::revoke_token,
        auth_routes::revoke_host,
        auth_routes::create_credential,
        auth_routes::join,
    ),
    components(schemas(Change, LinkInfo, DomainState, Peer, HostMember, MemberType, IgmpMode, UpstreamSpec, GatewayElection)),
    modifiers(&CommonAnswers)
)]
struct ApiDoc;

/// Adds the error answers shared by many operations: 400 wherever a body or a parameter
/// is read, 404 wherever the path names a domain or an agent, 413 and 415 with a body,
/// 503 on every change.
struct CommonAnswers;

/// The 409 answer of the operations that can meet existing state or a stale session.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 409,
    description = "Conflict with existing state, or a stale agent session (register again)"
)]
pub struct Conflict(pub ApiError);

fn error(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "ApiError",
                ))))
                .build(),
        )
        .into()
}

/// The security scheme's name in the document.
pub const BEARER: &str = "bearer";

impl Modify for CommonAnswers {
    fn modify(&self, doc: &mut Document) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A credential or, for POST /v1/join only, a join token (docs/security.md)",
                    ))
                    .build(),
            ),
        );
        doc.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
        for (path, item) in doc.paths.paths.iter_mut() {
            let public = auth::PUBLIC_ROUTES.contains(&path.as_str());
            for (method, op) in [
                (HttpMethod::Get, item.get.as_mut()),
                (HttpMethod::Post, item.post.as_mut()),
                (HttpMethod::Delete, item.delete.as_mut()),
            ] {
                if let Some(op) = op {
                    add_common(method, op);
                    if public {
                        // An empty list: no credential needed (OpenAPI 3.1 section 4.8.10).
                        op.security = Some(vec![SecurityRequirement::default()]);
                    } else {
                        add_auth(op);
                    }
                }
            }
        }
    }
}

fn add_auth(op: &mut Operation) {
    let answers = &mut op.responses.responses;
    answers.entry("401".to_string()).or_insert_with(|| {
        error("No credential, or one unknown, expired or revoked (`WWW-Authenticate: Bearer`)")
    });
    answers
        .entry("403".to_string())
        .or_insert_with(|| error("The credential's role or host may not do this"));
}

fn add_common(method: HttpMethod, op: &mut Operation) {
    // `schema_with` params carry no `required` of their own; a path parameter always is.
    // Nor do they keep their doc comment: the description comes from `PARAMETERS`.
    for p in op.parameters.iter_mut().flatten() {
        if p.parameter_in == ParameterIn::Path {
            p.required = Required::True;
        }
        if p.description.is_none() {
            p.description = PARAMETERS
                .iter()
                .find(|(place, name, _)| *place == p.parameter_in && *name == p.name)
                .map(|(_, _, text)| text.to_string());
        }
    }
    let params = op.parameters.iter().flatten();
    let has_path = params.clone().any(|p| p.parameter_in == ParameterIn::Path);
    let has_params = params.count() > 0;
    let answers = &mut op.responses.responses;
    let mut add = |code: &str, text: &str| {
        answers
            .entry(code.to_string())
            .or_insert_with(|| error(text));
    };
    if op.request_body.is_some() || has_params {
        add(
            "400",
            "Malformed JSON, a wrong type or a value out of range; `field` names it",
        );
    }
    if has_path {
        add("404", "Unknown domain, agent, member or source");
    }
    if op.request_body.is_some() {
        add("413", "The body is over the limit (see Content-Length)");
        add("415", "The body is not `application/json`");
    }
    if matches!(method, HttpMethod::Post | HttpMethod::Delete) {
        add(
            "503",
            "The store failed (nothing changed) or the controller is shutting down",
        );
    }
}

/// OpenAPI links (section 4.8.20): how the answer of one operation feeds the next, so a
/// client (or a stateful test) can follow a domain or an agent session it created.
/// Written as JSON: utoipa 5's `Link` spells its keys in snake case, which OpenAPI does not
/// read.
fn add_links(doc: &mut Value) {
    let name = json!({ "name": "$response.body#/name" });
    let host = json!({ "host": "$request.body#/host" });
    let links = [
        (
            "/v1/domains",
            "201",
            json!({
                "show": { "operationId": "show_domain", "parameters": name },
                "delete": { "operationId": "delete_domain", "parameters": name },
                "associate": { "operationId": "associate", "parameters": name },
                "add_member": { "operationId": "add_member", "parameters": name },
                "add_source": { "operationId": "add_source", "parameters": name },
            }),
        ),
        (
            "/v1/agents",
            "200",
            json!({
                "heartbeat": { "operationId": "heartbeat", "parameters": host,
                    "requestBody": { "session": "$response.body#/session" } },
                "deregister": { "operationId": "deregister", "parameters": host },
            }),
        ),
    ];
    for (path, status, l) in links {
        if let Some(resp) = doc
            .pointer_mut(&format!(
                "/paths/{}/post/responses/{status}",
                path.replace('/', "~1")
            ))
            .and_then(Value::as_object_mut)
        {
            resp.insert("links".to_string(), l);
        }
    }
}

/// The document, as JSON text.
pub fn document() -> String {
    let mut doc = match serde_json::to_value(ApiDoc::openapi()) {
        Ok(v) => v,
        Err(e) => {
            return json!({ "error": format!("the OpenAPI document cannot be written: {e}") })
                .to_string();
        }
    };
    add_links(&mut doc);
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

    #[test]
    fn every_parameter_is_described() {
        let doc: Value = serde_json::from_str(&document()).unwrap();
        let mut n = 0;
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    n += 1;
                    let text = p["description"].as_str().unwrap_or_default();
                    assert!(!text.is_empty(), "{method} {path} {}", p["name"]);
                }
            }
        }
        assert!(n >= 20, "{n}");
    }

    /// The body schemas carry the server's rules: a test that fails if a derive loses one.
    #[test]
    fn body_schemas_state_the_servers_rules() {
        let doc: Value = serde_json::from_str(&document()).unwrap();
        let s = &doc["components"]["schemas"];
        assert_eq!(s["DomainSpec"]["additionalProperties"], false);
        assert_eq!(s["DomainSpec"]["properties"]["vni"]["maximum"], 16_777_215);
        assert_eq!(
            s["StaticMemberSpec"]["properties"]["group"]["pattern"],
            schema::routable_group_pattern()
        );
        // Fields that take either family say `ip`; the tunnel's stay `ipv4`.
        for (schema, field) in [
            ("StaticMemberSpec", "group"),
            ("StaticSourceSpec", "address"),
            ("LinkMembership", "group"),
            ("HostMember", "group"),
            ("GroupEntry", "group"),
            ("GroupEntry", "address"),
        ] {
            assert_eq!(
                s[schema]["properties"][field]["format"], "ip",
                "{schema}.{field}"
            );
        }
        assert_eq!(
            s["LinkMembership"]["properties"]["reporters"]["items"]["format"],
            "ip"
        );
        assert_eq!(s["Peer"]["properties"]["tunnel_address"]["format"], "ipv4");
        let group_param = doc["paths"]["/v1/groups"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "group")
            .unwrap();
        assert_eq!(group_param["schema"]["format"], "ip");
        assert_eq!(
            s["AgentRegistration"]["properties"]["host"]["pattern"],
            schema::HOST_NAME_PATTERN
        );
        assert_eq!(s["Heartbeat"]["properties"]["session"]["minimum"], 0);
        assert_eq!(s["Heartbeat"]["properties"]["session"]["maximum"], u64::MAX);
        assert!(!document().contains("\"required\":[]"));
    }
}
