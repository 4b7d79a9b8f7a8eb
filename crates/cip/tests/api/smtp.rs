//! Email one-time codes over SMTP, end to end against a real SMTP server: aiosmtpd (PyPI),
//! started by the test on loopback. `.ci/run` installs it into its venv and points
//! `CIP_SMTP_PEER_PYTHON` at that interpreter; without it the test is skipped outside CI and
//! fails in CI.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use cip_server::config::ConfigLayer;
use serde_json::{Value, json};

use crate::helpers::*;

/// An SMTP server that writes each message to `<dir>/<n>.eml` (after `<n>.rcpt`, the
/// envelope recipients) and accepts AUTH `cip` / `s3cret-password` without TLS (loopback).
const SERVER: &str = r#"
import os, sys, json
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
out, port = sys.argv[1], int(sys.argv[2])
class Handler:
    async def handle_DATA(self, server, session, envelope):
        n = len([f for f in os.listdir(out) if f.endswith(".eml")])
        with open(os.path.join(out, f"{n}.rcpt"), "w") as f:
            json.dump(envelope.rcpt_tos, f)
        tmp = os.path.join(out, f"{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(out, f"{n}.eml"))
        return "250 OK"
def auth(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b"cip" and data.password == b"s3cret-password"
    return AuthResult(success=ok, handled=False)
c = Controller(Handler(), hostname="127.0.0.1", port=port, authenticator=auth, auth_require_tls=False)
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
"#;

struct SmtpPeer {
    child: Child,
    port: u16,
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> Option<String> {
    match std::env::var("CIP_SMTP_PEER_PYTHON") {
        Ok(p) => Some(p),
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "SKIPPED: CIP_SMTP_PEER_PYTHON is not set (a python with aiosmtpd; .ci/run sets it)"
            );
            None
        }
        Err(_) => panic!("CIP_SMTP_PEER_PYTHON (a python with aiosmtpd) is required in CI"),
    }
}

fn start_peer(python: &str, dir: &Path) -> SmtpPeer {
    // A free port: bound and released; the server binds it right after.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(python)
        .args(["-c", SERVER, dir.to_str().unwrap(), &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the SMTP peer did not start");
    SmtpPeer { child, port }
}

fn smtp_layer(port: u16, password: &str) -> ConfigLayer {
    ConfigLayer {
        smtp_host: Some("127.0.0.1".into()),
        smtp_port: Some(port),
        smtp_tls: Some("none".into()),
        smtp_username: Some("cip".into()),
        smtp_password: Some(password.into()),
        smtp_from: Some("Example Cloud <verify@cloud.example>".into()),
        ..Default::default()
    }
}

async fn send(app: &TestApp, cid: &str, channel: &str) -> (u16, Value) {
    let resp = app
        .post(
            &format!("/v1/customers/{cid}/otp"),
            &app.admin,
            &json!({ "channel": channel }),
        )
        .await;
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_codes_go_through_smtp() {
    let Some(python) = python() else { return };
    let mail = tempfile::tempdir().unwrap();
    let peer = start_peer(&python, mail.path());
    let app = spawn_app_with(Backend::Sqlite, smtp_layer(peer.port, "s3cret-password")).await;
    let (cid, _) = app.create_customer(&individual("smtp")).await;

    let (status, c) = send(&app, &cid, "email").await;
    assert_eq!(status, 201, "{c}");
    // Delivered before the answer: the message is there.
    let rcpt: Vec<String> =
        serde_json::from_slice(&std::fs::read(mail.path().join("0.rcpt")).unwrap()).unwrap();
    assert_eq!(rcpt.len(), 1);
    assert!(
        rcpt[0].eq_ignore_ascii_case("zelda.smtp@example.com"),
        "{rcpt:?}"
    );
    let message = String::from_utf8(std::fs::read(mail.path().join("0.eml")).unwrap()).unwrap();
    assert!(
        message.contains("From: \"Example Cloud\" <verify@cloud.example>"),
        "{message}"
    );
    assert!(
        message.contains("Subject: Your verification code"),
        "{message}"
    );
    let code: String = message
        .split("Your verification code is ")
        .nth(1)
        .unwrap()
        .chars()
        .take(6)
        .collect();
    assert!(
        code.chars().all(|c| c.is_ascii_digit()) && code.len() == 6,
        "{message}"
    );
    // Nothing went to the development outbox.
    assert!(!app.data_dir.join("otp-outbox").exists());

    let challenge = c["challenge_id"].as_str().unwrap();
    let resp = app
        .post(
            &format!("/v1/otp/{challenge}/verify"),
            &app.admin,
            &json!({ "code": code }),
        )
        .await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["result"], "pass", "{v}");

    // Phone codes still go to otp_sender (the file outbox here).
    let (status, c) = send(&app, &cid, "phone").await;
    assert_eq!(status, 201, "{c}");
    let id = c["challenge_id"].as_str().unwrap();
    assert!(
        app.data_dir
            .join("otp-outbox")
            .join(format!("{id}.json"))
            .exists()
    );
    app.cleanup().await;

    // A refused login: 502 with the server's reply code, never the address or the code.
    let app = spawn_app_with(Backend::Sqlite, smtp_layer(peer.port, "wrong-password")).await;
    let (cid, _) = app.create_customer(&individual("smtp2")).await;
    let (status, v) = send(&app, &cid, "email").await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["code"], "CIP-VERIFY-0007", "{v}");
    let text = v.to_string().to_lowercase();
    assert!(!text.contains("example.com"), "{v}");
    assert!(!mail.path().join("1.eml").exists(), "nothing was delivered");
    app.cleanup().await;
    drop(peer);
}

#[test]
fn smtp_settings_are_checked_at_load() {
    let load = |layer: ConfigLayer| {
        cip_server::config::load(None, ConfigLayer::default(), layer).map(|c| c.verification)
    };
    let v = load(ConfigLayer {
        smtp_host: Some("mail.example".into()),
        smtp_from: Some("verify@example.com".into()),
        ..Default::default()
    })
    .unwrap();
    let s = v.smtp.unwrap();
    assert_eq!((s.port, s.tls.as_str()), (587, "starttls"));
    for (layer, key) in [
        (
            ConfigLayer {
                smtp_port: Some(25),
                ..Default::default()
            },
            "smtp_host",
        ),
        (
            ConfigLayer {
                smtp_host: Some("mail.example".into()),
                smtp_from: Some("not a mailbox".into()),
                ..Default::default()
            },
            "smtp_from",
        ),
        (
            ConfigLayer {
                smtp_host: Some("mail.example".into()),
                smtp_from: Some("verify@example.com".into()),
                smtp_tls: Some("none".into()),
                smtp_username: Some("u".into()),
                smtp_password: Some("p".into()),
                ..Default::default()
            },
            "smtp_tls",
        ),
        (
            ConfigLayer {
                smtp_host: Some("mail.example".into()),
                smtp_from: Some("verify@example.com".into()),
                smtp_username: Some("u".into()),
                ..Default::default()
            },
            "smtp_password",
        ),
    ] {
        let e = load(layer).unwrap_err().to_string();
        assert!(e.contains(key), "{key}: {e}");
    }
    // The password never shows in `cip config print`.
    let c = cip_server::config::load(
        None,
        ConfigLayer::default(),
        ConfigLayer {
            smtp_host: Some("mail.example".into()),
            smtp_from: Some("verify@example.com".into()),
            smtp_username: Some("u".into()),
            smtp_password: Some("hunter2-secret".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let printed = c.to_redacted_toml();
    assert!(printed.contains("smtp_password = \"***\""), "{printed}");
    assert!(!printed.contains("hunter2"), "{printed}");
}
