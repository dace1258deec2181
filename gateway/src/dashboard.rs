//! The delivery dashboard (docs/operations.md): a static page served at `/dashboard`.
//!
//! Plain HTML, CSS and JavaScript in `dashboard/`, embedded in the binary
//! with `include_bytes!`: nothing to build, nothing fetched from elsewhere.
//! The page asks for an API token (kept in `sessionStorage`) and reads
//! `/api/*` with it, plus `/metrics` for the per-webhook figures; the server
//! side here only serves the files. Every answer carries a strict
//! Content-Security-Policy (same origin only, no inline script or style), so
//! untrusted payloads shown by the page cannot run code even if the page's
//! own escaping (it only ever sets `textContent`) were to slip. Assets are
//! not fingerprinted: they are sent with `Cache-Control: no-cache` and a
//! content-hash `ETag`, so a browser revalidates and an upgrade shows at once.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// Same origin only; no inline script, style, frames, forms or plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file: name under `/dashboard/`, content type, bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("dashboard/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("metrics.js", "text/javascript; charset=utf-8"),
    asset!("charts.js", "text/javascript; charset=utf-8"),
    asset!("ui.js", "text/javascript; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// `"<first 16 bytes of sha256, hex>"` per asset, computed once.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

/// The dashboard routes, to merge into the gateway's router (no state used).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/dashboard", get(index))
        .route("/dashboard/", get(|| async { Redirect::permanent("/dashboard") }))
        .route("/dashboard/{file}", get(file))
}

async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => serve(i, &headers),
        None => (StatusCode::NOT_FOUND, "no such dashboard file").into_response(),
    }
}

fn serve(i: usize, request: &HeaderMap) -> Response {
    let asset = &ASSETS[i];
    let etag = &etags()[i];
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every asset is linked from the page or imported by a script, and
    /// nothing points outside the gateway.
    #[test]
    fn index_is_first_and_every_asset_is_used() {
        assert_eq!(ASSETS[0].name, "index.html");
        let text = |a: &Asset| std::str::from_utf8(a.body).unwrap().to_owned();
        let html = text(&ASSETS[0]);
        let scripts: String = ASSETS.iter().filter(|a| a.name.ends_with(".js")).map(text).collect();
        for a in &ASSETS[1..] {
            let linked = html.contains(&format!("/dashboard/{}", a.name));
            let imported = scripts.contains(&format!("from './{}'", a.name));
            assert!(linked || imported, "{} is not used", a.name);
        }
        for a in ASSETS.iter().filter(|a| a.name != "favicon.svg") {
            // The SVG namespace is a name, not a place the page loads from.
            let t = text(a).replace("'http://www.w3.org/2000/svg'", "");
            assert!(
                !t.contains("http://") && !t.contains("https://"),
                "{} names another origin",
                a.name
            );
        }
    }

    #[test]
    fn conditional_get_answers_304() {
        let etag = etags()[1].clone();
        let mut req = HeaderMap::new();
        req.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&etag).unwrap());
        let resp = serve(1, &req);
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        let resp = serve(1, &HeaderMap::new());
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::ETAG], etag.as_str());
        assert!(
            resp.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
    }
}
