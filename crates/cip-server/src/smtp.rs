//! Email one-time codes over SMTP (`smtp_*` config keys; docs/design/0015). Email codes go
//! to the SMTP server, every other channel to the configured `otp_sender`. Neither the code
//! nor the address is ever logged or put into an error message: SMTP replies often quote the
//! recipient, so only the reply code is kept.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{SmtpConfig, SmtpTls};
use crate::verification::{CodeMessage, CodeSender};

/// Sends email codes through one SMTP server (a connection per message: codes are rare).
/// Settings that cannot be turned into a transport (validated at load, so not expected)
/// make every email code fail with the reason, rather than go elsewhere unnoticed.
pub struct SmtpSender {
    transport: Result<(AsyncSmtpTransport<Tokio1Executor>, Mailbox), String>,
}

impl SmtpSender {
    pub fn new(config: &SmtpConfig) -> Self {
        let transport = Self::build(config);
        if let Err(e) = &transport {
            tracing::error!(error = %e, "the SMTP sender cannot be set up; email codes will fail");
        }
        SmtpSender { transport }
    }

    fn build(config: &SmtpConfig) -> Result<(AsyncSmtpTransport<Tokio1Executor>, Mailbox), String> {
        let tls = match config.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls | SmtpTls::Tls => {
                let params = TlsParameters::new(config.host.clone())
                    .map_err(|e| format!("SMTP TLS settings: {e}"))?;
                if config.tls == SmtpTls::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(20)));
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_string(),
            ));
        }
        let from = config
            .from
            .parse()
            .map_err(|_| "smtp_from is not a mailbox".to_string())?;
        Ok((builder.build(), from))
    }
}

/// The message: the code in the subject's body, nothing else about the customer.
fn message(from: &Mailbox, m: &CodeMessage) -> Result<Message, String> {
    let to: Mailbox =
        m.to.parse()
            .map_err(|_| "the recorded email address is not a mailbox".to_string())?;
    // Whole minutes, rounded up: a 10-minute code sent now "expires in 10 minutes".
    let minutes = ((m.expires_at - crate::time::now_micros() + 59_999_999) / 60_000_000).max(1);
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject("Your verification code")
        .header(ContentType::TEXT_PLAIN)
        .body(format!(
            "Your verification code is {}\r\n\r\nIt expires in {minutes} minutes. If you did not ask for it, ignore this message.\r\n",
            m.code
        ))
        .map_err(|_| "the code message could not be built".to_string())
}

#[async_trait]
impl CodeSender for SmtpSender {
    async fn send(&self, m: &CodeMessage) -> Result<(), String> {
        let (transport, from) = self.transport.as_ref().map_err(Clone::clone)?;
        let email = message(from, m)?;
        transport.send(email).await.map(|_| ()).map_err(|e| {
            let code = e.status().map(|c| format!(" ({c})")).unwrap_or_default();
            if e.is_timeout() {
                "the SMTP server timed out".to_string()
            } else if e.is_tls() {
                "TLS with the SMTP server failed".to_string()
            } else if e.is_permanent() {
                format!("the SMTP server refused the message{code}")
            } else if e.is_transient() {
                format!("the SMTP server deferred the message{code}")
            } else {
                "the SMTP server could not be reached".to_string()
            }
        })
    }
}

/// Email codes to SMTP, the rest to `other`.
pub struct ByChannel {
    pub email: SmtpSender,
    pub other: Arc<dyn CodeSender>,
}

#[async_trait]
impl CodeSender for ByChannel {
    async fn send(&self, m: &CodeMessage) -> Result<(), String> {
        if m.channel == "email" {
            self.email.send(m).await
        } else {
            self.other.send(m).await
        }
    }
}
