//! Refused frames of one socket (`rate_limited`, `payload_too_large`, `bad_frame`), coalesced so
//! that a burst is answered by a bounded number of error frames.
//!
//! Rules, per socket and per code: the first refusal after a quiet interval is answered at once
//! (`count` 1, with its `request` and `client_id`); refusals within `interval` of the last error
//! frame of that code are gathered into one pending frame, sent when the interval has passed
//! (`client_id` of the first, `last_client_id` of the last that had one, `count` of all). So a
//! socket gets at most one error frame per code per interval, and the `count`s add up to the
//! refused frames.

use carehub_nats::hub::{FrameErrorCode, ServerFrame};
use serde::Deserialize;
use std::time::Duration;
use tokio::time::Instant;

/// The codes that are coalesced, in a fixed order.
const CODES: [FrameErrorCode; 3] = [
    FrameErrorCode::RateLimited,
    FrameErrorCode::PayloadTooLarge,
    FrameErrorCode::BadFrame,
];

/// One refused frame.
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    pub(crate) code: FrameErrorCode,
    pub(crate) message: String,
    /// The refused frame's `type`, when it could be read.
    pub(crate) request: Option<String>,
    /// The refused frame's `client_id`, when it had one.
    pub(crate) client_id: Option<String>,
}

impl Refused {
    /// A refusal of `text`, naming its `type` and `client_id` when they can be read.
    pub(crate) fn of(code: FrameErrorCode, message: impl Into<String>, text: &str) -> Self {
        let peek = serde_json::from_str::<Peek>(text).unwrap_or_default();
        Self {
            code,
            message: message.into(),
            request: peek.kind.filter(|k| k.len() <= 64),
            client_id: peek.client_id.filter(|c| c.chars().count() <= 64),
        }
    }
}

/// The two fields of a client frame an error names, read without the rest.
#[derive(Debug, Default, Deserialize)]
struct Peek {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
}

#[derive(Debug)]
struct Pending {
    first: Refused,
    last_client_id: Option<String>,
    count: u32,
}

#[derive(Debug, Default)]
struct Slot {
    last_sent: Option<Instant>,
    /// Boxed: every socket holds three slots, and almost all of them are never pending.
    pending: Option<Box<Pending>>,
}

/// The coalescing state of one socket.
#[derive(Debug)]
pub(crate) struct Refusals {
    interval: Duration,
    slots: [Slot; 3],
}

impl Refusals {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            slots: Default::default(),
        }
    }

    /// Records a refusal; returns the error frame to send now, if one may go now.
    /// `retry_after_ms` is how long until the socket may send again.
    pub(crate) fn refuse(
        &mut self,
        r: Refused,
        now: Instant,
        retry_after_ms: u64,
    ) -> Option<ServerFrame> {
        let interval = self.interval;
        let slot = self.slot(r.code);
        if let Some(p) = &mut slot.pending {
            p.count = p.count.saturating_add(1);
            // The last dropped frame that had one: a client re-sends up to it.
            if r.client_id.is_some() {
                p.last_client_id = r.client_id;
            }
            return None;
        }
        let quiet = slot
            .last_sent
            .is_none_or(|t| now.duration_since(t) >= interval);
        let pending = Pending {
            last_client_id: r.client_id.clone(),
            first: r,
            count: 1,
        };
        if quiet {
            slot.last_sent = Some(now);
            Some(frame(pending, retry_after_ms))
        } else {
            slot.pending = Some(Box::new(pending));
            None
        }
    }

    /// When the next pending error frame is due, if any is pending.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter(|s| s.pending.is_some())
            .filter_map(|s| s.last_sent.map(|t| t + self.interval))
            .min()
    }

    /// Takes the pending error frames that are due at `now`.
    pub(crate) fn flush(&mut self, now: Instant, retry_after_ms: u64) -> Vec<ServerFrame> {
        let interval = self.interval;
        let mut out = Vec::new();
        for slot in &mut self.slots {
            let due = slot.last_sent.is_none_or(|t| now >= t + interval);
            if due && let Some(p) = slot.pending.take() {
                slot.last_sent = Some(now);
                out.push(frame(*p, retry_after_ms));
            }
        }
        out
    }

    fn slot(&mut self, code: FrameErrorCode) -> &mut Slot {
        let i = CODES.iter().position(|c| *c == code).unwrap_or(2);
        &mut self.slots[i]
    }
}

fn frame(p: Pending, retry_after_ms: u64) -> ServerFrame {
    ServerFrame::Error {
        code: p.first.code,
        message: p.first.message,
        request: p.first.request,
        client_id: p.first.client_id,
        last_client_id: p.last_client_id,
        count: Some(p.count),
        retry_after_ms: Some(retry_after_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(id: &str) -> Refused {
        let text = format!(r#"{{"type":"chat_send","room":"r","client_id":"{id}","body":"x"}}"#);
        Refused::of(FrameErrorCode::RateLimited, "slow down", &text)
    }

    fn count(f: &ServerFrame) -> u32 {
        match f {
            ServerFrame::Error { count, .. } => count.unwrap_or(0),
            _ => 0,
        }
    }

    #[test]
    fn a_single_refusal_is_answered_at_once_with_its_request_and_client_id() {
        let mut r = Refusals::new(Duration::from_millis(250));
        let f = r.refuse(chat("c1"), Instant::now(), 40).unwrap();
        let ServerFrame::Error {
            request,
            client_id,
            last_client_id,
            count,
            retry_after_ms,
            ..
        } = f
        else {
            panic!("not an error frame")
        };
        assert_eq!(request.as_deref(), Some("chat_send"));
        assert_eq!(client_id.as_deref(), Some("c1"));
        assert_eq!(last_client_id.as_deref(), Some("c1"));
        assert_eq!((count, retry_after_ms), (Some(1), Some(40)));
        assert!(r.due().is_none());
    }

    #[test]
    fn a_burst_becomes_one_frame_per_interval_whose_counts_add_up() {
        let mut r = Refusals::new(Duration::from_millis(250));
        let t0 = Instant::now();
        let mut frames = vec![r.refuse(chat("c0"), t0, 1).unwrap()];
        for i in 1..1000 {
            assert!(r.refuse(chat(&format!("c{i}")), t0, 1).is_none());
        }
        assert_eq!(r.due(), Some(t0 + Duration::from_millis(250)));
        assert!(r.flush(t0 + Duration::from_millis(100), 1).is_empty());
        frames.extend(r.flush(t0 + Duration::from_millis(250), 1));
        assert_eq!(frames.len(), 2);
        assert_eq!(frames.iter().map(count).sum::<u32>(), 1000);
        let ServerFrame::Error {
            client_id,
            last_client_id,
            ..
        } = &frames[1]
        else {
            panic!("not an error frame")
        };
        assert_eq!(
            (client_id.as_deref(), last_client_id.as_deref()),
            (Some("c1"), Some("c999"))
        );
    }

    #[test]
    fn codes_are_coalesced_separately_and_unreadable_frames_name_nothing() {
        let mut r = Refusals::new(Duration::from_millis(250));
        let t0 = Instant::now();
        assert!(r.refuse(chat("a"), t0, 1).is_some());
        let bad = Refused::of(FrameErrorCode::BadFrame, "unreadable", "{not json");
        let f = r.refuse(bad, t0, 1).unwrap();
        let ServerFrame::Error {
            code,
            request,
            client_id,
            ..
        } = f
        else {
            panic!("not an error frame")
        };
        assert_eq!(
            (code, request, client_id),
            (FrameErrorCode::BadFrame, None, None)
        );
    }

    #[test]
    fn the_last_client_id_is_of_the_last_dropped_frame_that_had_one() {
        let mut r = Refusals::new(Duration::from_millis(250));
        let t0 = Instant::now();
        assert!(r.refuse(chat("a"), t0, 1).is_some());
        let typing = r#"{"type":"typing","room":"r","active":true}"#;
        let typing = Refused::of(FrameErrorCode::RateLimited, "slow down", typing);
        assert!(r.refuse(typing.clone(), t0, 1).is_none());
        assert!(r.refuse(chat("b"), t0, 1).is_none());
        assert!(r.refuse(chat("c"), t0, 1).is_none());
        assert!(r.refuse(typing, t0, 1).is_none());
        let f = r.flush(t0 + Duration::from_millis(250), 1);
        let [
            ServerFrame::Error {
                request,
                client_id,
                last_client_id,
                count,
                ..
            },
        ] = f.as_slice()
        else {
            panic!("one error frame: {f:?}")
        };
        assert_eq!(
            (
                request.as_deref(),
                client_id.as_deref(),
                last_client_id.as_deref(),
                *count
            ),
            (Some("typing"), None, Some("c"), Some(4))
        );
    }
}
