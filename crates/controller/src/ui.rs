//! The web view at `/ui/` (see `docs/web.md`): a page that shows a domain live, drawn
//! from the API it calls with the viewer's bearer credential.
//!
//! The files are part of the binary (`include_bytes!`): no build step, CDN or network
//! at run time. They are public, as they hold no data; every figure the page shows
//! comes from the authenticated API. Each answer carries a strict Content-Security-Policy
//! (`default-src 'self'`: no inline script or style, no other origin), an `ETag` (the
//! SHA-256 of the file) and `Cache-Control: no-cache`, so a browser revalidates and an
//! upgraded controller's page is never mixed with a cached old one.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::extract::{ApiErr, ApiPath};

/// The page's Content-Security-Policy.
pub const CSP: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; \
                       frame-ancestors 'none'; form-action 'none'";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $ct:expr) => {
        Asset {
            path: $path,
            content_type: $ct,
            body: include_bytes!(concat!("../ui/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file under `/ui/`.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("sse.js", JS),
    asset!("graph.js", JS),
    asset!("panels.js", JS),
    asset!("format.js", JS),
    asset!("vendor/cytoscape.min.js", JS),
    asset!("vendor/cytoscape.LICENSE", "text/plain; charset=utf-8"),
];

/// The `ETag` of each of [`ASSETS`], in order (computed once).
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let d = ring::digest::digest(&ring::digest::SHA256, a.body);
                let hex: String = d.as_ref()[..16]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

/// The security headers of every answer under `/ui`.
fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn matches(if_none_match: Option<&HeaderValue>, etag: &str) -> bool {
    let Some(v) = if_none_match.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    v.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/").is_some_and(|weak| weak == etag))
}

/// The answer for the file at `path` (relative to `/ui/`).
fn serve(path: &str, req: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.path == path) else {
        let mut r = ApiErr::new(
            StatusCode::NOT_FOUND,
            "no such file of the web view; open /ui/",
        )
        .into_response();
        secure(r.headers_mut());
        return r;
    };
    let asset = &ASSETS[i];
    let etag = &etags()[i];
    let mut r = if matches(req.get(header::IF_NONE_MATCH), etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(h);
    r
}

/// `GET /ui`: to `/ui/`, so the page's relative links resolve under it.
pub(crate) async fn root() -> Redirect {
    Redirect::permanent("/ui/")
}

/// `GET /ui/`: the page.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /ui/{*path}`: a file of the page.
pub(crate) async fn file(ApiPath(path): ApiPath, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_type_and_a_distinct_tag() {
        assert_eq!(etags().len(), ASSETS.len());
        for (a, t) in ASSETS.iter().zip(etags()) {
            assert!(!a.body.is_empty(), "{}", a.path);
            assert_eq!(t.len(), 34, "{}", a.path);
        }
        let r = serve("app.js", &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], JS);
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
    }

    #[test]
    fn a_known_tag_is_not_modified() {
        let etag = serve("index.html", &HeaderMap::new()).headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag.clone());
        assert_eq!(serve("index.html", &h).status(), StatusCode::NOT_MODIFIED);
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"other\", W/\"x\""),
        );
        assert_eq!(serve("index.html", &h).status(), StatusCode::OK);
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert_eq!(serve("index.html", &h).status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn unknown_paths_are_404_never_a_file_outside() {
        for p in [
            "",
            "../Cargo.toml",
            "vendor/",
            "index.html/",
            "%2e%2e/x",
            "\0",
        ] {
            assert_eq!(
                serve(p, &HeaderMap::new()).status(),
                StatusCode::NOT_FOUND,
                "{p:?}"
            );
        }
    }
}
