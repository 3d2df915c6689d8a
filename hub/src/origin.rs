//! Which browser origins may open a socket.
//!
//! The rule: a request without an `Origin` header (a native or server-side client; browsers
//! always send one on websocket upgrades) is allowed. With `CAREHUB_HUB_ALLOWED_ORIGINS` set,
//! an `Origin` must equal one of its entries (scheme, host and port; case-insensitive, a trailing
//! slash ignored). Unset, only the origin of `CAREHUB_PUBLIC_URL` (the gateway's public address,
//! which serves the web client) is allowed, and with neither set no browser origin is.

/// Whether a websocket upgrade carrying `origin` may proceed.
pub(crate) fn allowed(origin: Option<&str>, allowed: &[String], public_url: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = normalize(origin);
    if allowed.is_empty() {
        public_url.is_some_and(|u| origin_of(u) == origin)
    } else {
        allowed.iter().any(|a| normalize(a) == origin)
    }
}

fn normalize(s: &str) -> String {
    s.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// `scheme://host[:port]` of a URL (everything before the path).
fn origin_of(url: &str) -> String {
    let url = normalize(url);
    match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            let end = rest.find('/').unwrap_or(rest.len());
            format!("{}{}", &url[..i + 3], &rest[..end])
        }
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_origin_is_a_non_browser_client_and_allowed() {
        assert!(allowed(None, &[], None));
    }

    #[test]
    fn without_a_list_only_the_public_urls_origin_is_allowed() {
        let public = Some("https://care.example.org/app/");
        assert!(allowed(Some("https://care.example.org"), &[], public));
        assert!(allowed(Some("HTTPS://Care.Example.org/"), &[], public));
        assert!(!allowed(Some("https://evil.example"), &[], public));
        assert!(!allowed(Some("http://care.example.org"), &[], public));
        assert!(!allowed(Some("https://care.example.org"), &[], None));
    }

    #[test]
    fn an_explicit_list_replaces_the_public_url() {
        let list = vec!["http://localhost:5173".to_owned()];
        assert!(allowed(Some("http://localhost:5173"), &list, None));
        assert!(!allowed(Some("http://localhost:5174"), &list, None));
        assert!(!allowed(
            Some("https://care.example.org"),
            &list,
            Some("https://care.example.org")
        ));
    }
}
