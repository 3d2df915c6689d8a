//! Request ids: a caller's `x-request-id` is kept when it is a sane token, else a UUID v7 is made.

/// The request id of the request being handled (in the request extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestId(pub String);

/// Keeps `incoming` if it is 1..=64 characters of `[A-Za-z0-9-_.]`, so it is safe to log and to
/// put in headers; anything else is replaced by a fresh UUID v7.
pub(crate) fn sanitize(incoming: Option<&str>) -> RequestId {
    match incoming {
        Some(id) if is_sane(id) => RequestId(id.to_owned()),
        _ => RequestId(uuid::Uuid::now_v7().to_string()),
    }
}

fn is_sane(id: &str) -> bool {
    carehub_nats::rpc::is_sane_request_id(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_incoming_id_is_kept() {
        assert_eq!(sanitize(Some("abc-123_x.y")).0, "abc-123_x.y");
        let max = "a".repeat(64);
        assert_eq!(sanitize(Some(&max)).0, max);
    }

    #[test]
    fn unsafe_or_missing_ids_are_replaced_with_a_uuid_v7() {
        for bad in [
            None,
            Some(""),
            Some("has space"),
            Some("line\nbreak"),
            Some("quote\""),
            Some("ünïcode"),
        ] {
            let id = sanitize(bad).0;
            let parsed = uuid::Uuid::parse_str(&id).unwrap();
            assert_eq!(parsed.get_version_num(), 7, "{bad:?}");
        }
        let long = "a".repeat(65);
        assert_ne!(sanitize(Some(&long)).0, long);
    }
}
