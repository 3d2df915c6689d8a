//! Delivering one mail: over SMTP with `lettre`, or, without SMTP settings, as an `.eml` file
//! a developer can open. Failures are sorted into temporary (try again later) and permanent.

use crate::config::SmtpConfig;
use lettre::message::header::{
    ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue,
};
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::time::Duration;

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// A 4xx answer, a connection failure or a timeout: worth another attempt.
    #[error("temporary: {0}")]
    Temporary(String),
    /// A 5xx answer or an unusable message: another attempt would fail the same way.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Where mail goes.
#[derive(Clone)]
pub(crate) enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// One `<mail id>.eml` file per mail in this directory.
    Files(PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp(_) => f.write_str("Mailer::Smtp"),
            Self::Files(dir) => f.debug_tuple("Mailer::Files").field(dir).finish(),
        }
    }
}

const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

impl Mailer {
    /// An SMTP mailer when `smtp` is set, else a directory of `.eml` files.
    ///
    /// # Errors
    /// When the SMTP URL is invalid or the directory cannot be created.
    pub(crate) fn new(smtp: Option<&SmtpConfig>, dir: PathBuf) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        match smtp {
            Some(s) => {
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&s.url)
                    .context("CAREHUB_SMTP_URL: not a usable SMTP URL")?
                    .timeout(Some(SMTP_TIMEOUT));
                if let (Some(user), Some(password)) = (&s.username, &s.password) {
                    builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
                }
                Ok(Self::Smtp(builder.build()))
            }
            None => {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating the mail directory {}", dir.display()))?;
                Ok(Self::Files(dir))
            }
        }
    }

    /// Delivers one plain-text mail. `id` names the file in directory mode, so a repeated
    /// attempt rewrites the same file; `event` is the id of the event the mail tells of, sent
    /// as `X-Carehub-Event`.
    ///
    /// # Errors
    /// [`SendError`] sorted by whether retrying can help.
    pub(crate) async fn send(
        &self,
        id: &str,
        from: &str,
        to: &str,
        subject: &str,
        body: &str,
        event: Option<&str>,
    ) -> Result<(), SendError> {
        let message = build(from, to, subject, body, event)?;
        match self {
            Self::Smtp(transport) => match transport.send(message).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
                Err(e) => Err(SendError::Temporary(e.to_string())),
            },
            Self::Files(dir) => {
                let tmp = dir.join(format!(".{id}.eml.tmp"));
                let path = dir.join(format!("{id}.eml"));
                let bytes = message.formatted();
                let io = |e: std::io::Error| {
                    SendError::Temporary(format!("writing {}: {e}", path.display()))
                };
                tokio::fs::write(&tmp, bytes).await.map_err(io)?;
                tokio::fs::rename(&tmp, &path).await.map_err(io)
            }
        }
    }
}

/// The `X-Carehub-Event` header: the id of the event a mail tells of.
#[derive(Debug, Clone)]
struct CarehubEvent(String);

impl Header for CarehubEvent {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Carehub-Event")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.trim().to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

fn build(
    from: &str,
    to: &str,
    subject: &str,
    body: &str,
    event: Option<&str>,
) -> Result<Message, SendError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| SendError::Permanent(format!("{what}: {e}"));
    let from: Mailbox = from.parse().map_err(|e| bad("sender address", &e))?;
    let to: Mailbox = to.parse().map_err(|e| bad("recipient address", &e))?;
    let mut builder = Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    if let Some(event) = event {
        builder = builder.header(CarehubEvent(event.to_owned()));
    }
    builder
        .body(readable_body(body))
        .map_err(|e| bad("message", &e))
}

/// ASCII text with lines of sane length goes as it is (7bit), so links stay whole and
/// readable in the raw mail: quoted-printable would break lines longer than 76 characters and
/// escape every `=`. Anything else gets lettre's own safe encoding.
fn readable_body(body: &str) -> Body {
    let plain =
        body.is_ascii() && !body.contains(['\0', '\r']) && body.lines().all(|l| l.len() <= 900);
    if plain {
        let crlf = body.replace('\n', "\r\n");
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(body.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_smtp_a_mail_becomes_one_eml_file_named_after_its_id() {
        let dir =
            std::env::temp_dir().join(format!("carehub-mail-{}", uuid::Uuid::new_v4().simple()));
        let mailer = Mailer::new(None, dir.clone()).unwrap();
        for _ in 0..2 {
            mailer
                .send(
                    "m1",
                    "carehub <no-reply@localhost>",
                    "ada@example.org",
                    "Hi",
                    "Body text",
                    Some("event-1"),
                )
                .await
                .unwrap();
        }
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(dir.join("m1.eml")).unwrap();
        assert!(
            text.contains("To: ada@example.org")
                && text.contains("Body text")
                && text.contains("X-Carehub-Event: event-1"),
            "{text}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_malformed_address_is_a_permanent_failure() {
        let dir =
            std::env::temp_dir().join(format!("carehub-mail-{}", uuid::Uuid::new_v4().simple()));
        let mailer = Mailer::new(None, dir.clone()).unwrap();
        let e = mailer
            .send(
                "m",
                "carehub <no-reply@localhost>",
                "not an address",
                "s",
                "b",
                None,
            )
            .await;
        assert!(matches!(e, Err(SendError::Permanent(_))), "{e:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_temporary_failure() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let smtp = SmtpConfig {
            url: format!("smtp://127.0.0.1:{port}"),
            username: None,
            password: None,
        };
        let mailer = Mailer::new(Some(&smtp), PathBuf::new()).unwrap();
        let e = mailer
            .send(
                "m",
                "carehub <no-reply@localhost>",
                "a@example.org",
                "s",
                "b",
                None,
            )
            .await;
        assert!(matches!(e, Err(SendError::Temporary(_))), "{e:?}");
    }
}
