//! Access events at the boundary: NDJSON lines, CSV records, JSON arrays (and gzip of the
//! files) parsed into [`ParsedEvent`]s, each bad line reported with its number and the reason.
//! Nothing here resolves accounts: the account stays the text that was sent (a cip id or the
//! provider's external id) until the caller looks it up.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use crate::{IpKey, ip_key};

/// What was done. Stored as a small integer; the names are the wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Login = 1,
    Logout = 2,
    Console = 3,
    Api = 4,
    Ssh = 5,
    Rdp = 6,
    Admin = 7,
    Billing = 8,
    Support = 9,
}

pub const ACTIONS: &[Action] = &[
    Action::Login,
    Action::Logout,
    Action::Console,
    Action::Api,
    Action::Ssh,
    Action::Rdp,
    Action::Admin,
    Action::Billing,
    Action::Support,
];

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::Logout => "logout",
            Action::Console => "console",
            Action::Api => "api",
            Action::Ssh => "ssh",
            Action::Rdp => "rdp",
            Action::Admin => "admin",
            Action::Billing => "billing",
            Action::Support => "support",
        }
    }

    pub fn code(self) -> i64 {
        self as i64
    }

    pub fn from_code(code: i64) -> Option<Action> {
        ACTIONS.iter().copied().find(|a| a.code() == code)
    }

    pub fn parse(s: &str) -> Option<Action> {
        ACTIONS.iter().copied().find(|a| a.as_str() == s)
    }
}

/// An event as sent, parsed field by field; only the account is still unresolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    /// A cip account id or the provider's external id, as sent.
    pub account: String,
    pub principal: String,
    pub ip: IpKey,
    pub at: i64,
    pub action: Action,
    pub user_agent: Option<String>,
    pub session: Option<String>,
    pub resource: Option<String>,
    pub event_id: Option<String>,
}

/// A line (or array item) that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based line number in the file or body (item number for a JSON array).
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Copy)]
pub struct ParseConfig {
    /// Longer lines are rejected (and skipped without being buffered whole).
    pub max_line_bytes: usize,
    /// Times later than `now + future_skew` are rejected.
    pub future_skew_micros: i64,
    pub now_micros: i64,
}

impl ParseConfig {
    pub fn new(now_micros: i64) -> Self {
        ParseConfig {
            max_line_bytes: 16 * 1024,
            future_skew_micros: 5 * 60 * 1_000_000,
            now_micros,
        }
    }
}

const MAX_ACCOUNT: usize = 200;
const MAX_PRINCIPAL: usize = 256;
const MAX_USER_AGENT: usize = 1024;
const MAX_TEXT: usize = 512;
const MAX_EVENT_ID: usize = 128;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEvent<'a> {
    #[serde(borrow)]
    account: Option<Cow<'a, str>>,
    #[serde(borrow)]
    principal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    session: Option<Cow<'a, str>>,
    #[serde(borrow)]
    resource: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_id: Option<Cow<'a, str>>,
}

/// The fields of one event as text, whatever the wire format.
#[derive(Default)]
pub struct Fields<'a> {
    pub account: Option<&'a str>,
    pub principal: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub time: Option<&'a str>,
    pub action: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub session: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub event_id: Option<&'a str>,
}

fn text(
    name: &str,
    v: Option<&str>,
    required: bool,
    max: usize,
    problems: &mut Vec<String>,
) -> Option<String> {
    match v.map(str::trim) {
        None | Some("") => {
            if required {
                problems.push(format!("{name}: required"));
            }
            None
        }
        Some(s) if s.len() > max => {
            problems.push(format!("{name}: longer than {max} bytes"));
            None
        }
        Some(s) if s.chars().any(char::is_control) => {
            problems.push(format!("{name}: contains control characters"));
            None
        }
        Some(s) => Some(s.to_string()),
    }
}

/// Parses the fields of one event; every problem of the line is named in the reason.
pub fn parse_fields(f: &Fields<'_>, cfg: &ParseConfig) -> Result<ParsedEvent, String> {
    let mut problems = Vec::new();
    let account = text("account", f.account, true, MAX_ACCOUNT, &mut problems);
    let principal = text("principal", f.principal, true, MAX_PRINCIPAL, &mut problems);
    let ip = match f.ip.map(str::trim) {
        None | Some("") => {
            problems.push("ip: required".into());
            None
        }
        Some(s) => match s.parse::<IpAddr>() {
            Ok(ip) => Some(ip_key(ip)),
            Err(_) => {
                problems.push(format!("ip: `{}` is not an IPv4 or IPv6 address", clip(s)));
                None
            }
        },
    };
    let at = match f.time.map(str::trim) {
        None | Some("") => {
            problems.push("time: required".into());
            None
        }
        Some(s) => match parse_time(s, cfg) {
            Ok(t) => Some(t),
            Err(m) => {
                problems.push(format!("time: {m}"));
                None
            }
        },
    };
    let action = match f.action.map(str::trim) {
        None | Some("") => {
            problems.push("action: required".into());
            None
        }
        Some(s) => match Action::parse(s) {
            Some(a) => Some(a),
            None => {
                let names: Vec<&str> = ACTIONS.iter().map(|a| a.as_str()).collect();
                problems.push(format!(
                    "action: `{}` is not one of {}",
                    clip(s),
                    names.join(", ")
                ));
                None
            }
        },
    };
    let user_agent = text(
        "user_agent",
        f.user_agent,
        false,
        MAX_USER_AGENT,
        &mut problems,
    );
    let session = text("session", f.session, false, MAX_TEXT, &mut problems);
    let resource = text("resource", f.resource, false, MAX_TEXT, &mut problems);
    let event_id = text("event_id", f.event_id, false, MAX_EVENT_ID, &mut problems);
    match (account, principal, ip, at, action) {
        (Some(account), Some(principal), Some(ip), Some(at), Some(action))
            if problems.is_empty() =>
        {
            Ok(ParsedEvent {
                account,
                principal,
                ip,
                at,
                action,
                user_agent,
                session,
                resource,
                event_id,
            })
        }
        _ => Err(problems.join("; ")),
    }
}

/// Quotes at most 64 characters of a bad value (reasons may be shown to the sender; the value
/// is theirs, and a long one would bloat the report).
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// RFC 3339 with an offset (`Z` or `±hh:mm`); a time without offset is ambiguous and refused.
pub fn parse_time(s: &str, cfg: &ParseConfig) -> Result<i64, String> {
    let ts: jiff::Timestamp = s.parse().map_err(|_| {
        format!(
            "`{}` is not an RFC 3339 time with an offset (e.g. 2026-01-02T03:04:05Z)",
            clip(s)
        )
    })?;
    let t = ts.as_microsecond();
    if t < 0 {
        return Err("before 1970".into());
    }
    if t > cfg.now_micros.saturating_add(cfg.future_skew_micros) {
        return Err(format!(
            "`{}` is in the future (more than {} s ahead of this server's clock)",
            clip(s),
            cfg.future_skew_micros / 1_000_000
        ));
    }
    Ok(t)
}

/// One NDJSON line or one JSON object.
pub fn parse_json(bytes: &[u8], cfg: &ParseConfig) -> Result<ParsedEvent, String> {
    let w: WireEvent<'_> =
        serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    parse_fields(
        &Fields {
            account: w.account.as_deref(),
            principal: w.principal.as_deref(),
            ip: w.ip.as_deref(),
            time: w.time.as_deref(),
            action: w.action.as_deref(),
            user_agent: w.user_agent.as_deref(),
            session: w.session.as_deref(),
            resource: w.resource.as_deref(),
            event_id: w.event_id.as_deref(),
        },
        cfg,
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

/// One line of input: its number, the byte offset just after it (in the decompressed
/// stream), and the event or the reason it was refused. Blank lines yield nothing.
#[derive(Debug)]
pub struct Item {
    pub line: u64,
    pub end_offset: u64,
    pub result: Result<ParsedEvent, Rejected>,
}

/// Reads events from a stream, line by line, with the position after each.
pub struct EventReader {
    input: Box<dyn BufRead + Send>,
    format: Format,
    cfg: ParseConfig,
    offset: u64,
    line: u64,
    buf: Vec<u8>,
    /// CSV: column index of each field name.
    columns: Option<Vec<Column>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Account,
    Principal,
    Ip,
    Time,
    Action,
    UserAgent,
    Session,
    Resource,
    EventId,
}

impl Column {
    fn parse(s: &str) -> Option<Column> {
        Some(match s.trim() {
            "account" => Column::Account,
            "principal" => Column::Principal,
            "ip" => Column::Ip,
            "time" => Column::Time,
            "action" => Column::Action,
            "user_agent" => Column::UserAgent,
            "session" => Column::Session,
            "resource" => Column::Resource,
            "event_id" => Column::EventId,
            _ => return None,
        })
    }
}

/// Where a resumed read starts: the byte offset and line count of the last committed batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Start {
    pub offset: u64,
    pub line: u64,
}

/// Why a file cannot be read at all (as opposed to a bad line).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("CSV header: {0}")]
    Header(String),
}

enum LineRead {
    Eof,
    Line,
    TooLong(usize),
}

impl EventReader {
    /// Reads `input` (already decompressed) from `start`. CSV input must begin with a header
    /// naming its columns; it is read again on resume.
    pub fn new(
        input: Box<dyn BufRead + Send>,
        format: Format,
        cfg: ParseConfig,
        start: Start,
    ) -> Result<Self, SourceError> {
        let mut r = EventReader {
            input,
            format,
            cfg,
            offset: 0,
            line: 0,
            buf: Vec::with_capacity(512),
            columns: None,
        };
        if format == Format::Csv {
            match r.read_line()? {
                LineRead::Line => {}
                LineRead::Eof => return Err(SourceError::Header("the file is empty".into())),
                LineRead::TooLong(_) => {
                    return Err(SourceError::Header("the header line is too long".into()));
                }
            }
            let header =
                std::str::from_utf8(&r.buf).map_err(|_| SourceError::Header("not UTF-8".into()))?;
            let mut cols = Vec::new();
            for name in header.trim_end_matches(['\r', '\n']).split(',') {
                let name = name.trim().trim_matches('"');
                cols.push(Column::parse(name).ok_or_else(|| {
                    SourceError::Header(format!(
                        "unknown column `{}` (use account, principal, ip, time, action, \
                         user_agent, session, resource, event_id)",
                        clip(name)
                    ))
                })?);
            }
            for needed in [
                Column::Account,
                Column::Principal,
                Column::Ip,
                Column::Time,
                Column::Action,
            ] {
                if !cols.contains(&needed) {
                    return Err(SourceError::Header(format!("missing column {needed:?}")));
                }
            }
            r.columns = Some(cols);
        }
        if start.offset > r.offset {
            let skip = start.offset - r.offset;
            let copied = std::io::copy(&mut (&mut r.input).take(skip), &mut std::io::sink())?;
            if copied != skip {
                return Err(SourceError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file is shorter than its recorded import position: it changed",
                )));
            }
            r.offset = start.offset;
            r.line = start.line;
        }
        Ok(r)
    }

    /// Opens a file: gzip is recognised by its magic bytes, the format by the extension
    /// (`.csv` is CSV, anything else NDJSON; a `.gz` suffix is looked through).
    pub fn open_file(path: &Path, cfg: ParseConfig, start: Start) -> Result<Self, SourceError> {
        let mut file = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
        let gz = file.fill_buf()?.starts_with(&[0x1f, 0x8b]);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        let format = if name.ends_with(".csv") {
            Format::Csv
        } else {
            Format::Ndjson
        };
        let input: Box<dyn BufRead + Send> = if gz {
            Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::bufread::MultiGzDecoder::new(file),
            ))
        } else {
            Box::new(file)
        };
        Self::new(input, format, cfg, start)
    }

    /// Position after the last line returned.
    pub fn position(&self) -> Start {
        Start {
            offset: self.offset,
            line: self.line,
        }
    }

    /// Reads one line into `buf` (without its end), never buffering more than the limit.
    fn read_line(&mut self) -> std::io::Result<LineRead> {
        self.buf.clear();
        let max = self.cfg.max_line_bytes;
        let mut total = 0usize;
        let mut any = false;
        loop {
            let available = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            any = true;
            let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            // One byte more than the limit: room for the '\r' of a CRLF line end.
            if total + chunk.len() <= max + 1 {
                self.buf.extend_from_slice(chunk);
            }
            total += chunk.len();
            let used = done.unwrap_or(available.len());
            self.input.consume(used);
            self.offset += used as u64;
            if done.is_some() {
                break;
            }
        }
        if !any {
            return Ok(LineRead::Eof);
        }
        self.line += 1;
        if total <= max + 1 && self.buf.last() == Some(&b'\r') {
            self.buf.pop();
            total -= 1;
        }
        if total > max {
            self.buf.clear();
            return Ok(LineRead::TooLong(total));
        }
        Ok(LineRead::Line)
    }

    /// The next event or rejected line; `None` at the end of input.
    pub fn next_item(&mut self) -> Result<Option<Item>, SourceError> {
        loop {
            let read = self.read_line()?;
            let line = self.line;
            let reject = |reason: String| Item {
                line,
                end_offset: 0,
                result: Err(Rejected { line, reason }),
            };
            let mut item = match read {
                LineRead::Eof => return Ok(None),
                LineRead::TooLong(n) => reject(format!(
                    "line of {n} bytes is longer than the limit of {} bytes",
                    self.cfg.max_line_bytes
                )),
                LineRead::Line => {
                    if self.buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match std::str::from_utf8(&self.buf) {
                        Err(e) => reject(format!(
                            "not UTF-8 (invalid byte at column {})",
                            e.valid_up_to() + 1
                        )),
                        Ok(s) => {
                            let parsed = match self.format {
                                Format::Ndjson => parse_json(s.as_bytes(), &self.cfg),
                                Format::Csv => self.parse_csv_line(s),
                            };
                            match parsed {
                                Ok(ev) => Item {
                                    line,
                                    end_offset: 0,
                                    result: Ok(ev),
                                },
                                Err(reason) => reject(reason),
                            }
                        }
                    }
                }
            };
            item.end_offset = self.offset;
            return Ok(Some(item));
        }
    }

    fn parse_csv_line(&self, line: &str) -> Result<ParsedEvent, String> {
        let Some(cols) = &self.columns else {
            return Err("no CSV header".into());
        };
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes());
        let mut record = csv::StringRecord::new();
        match rdr.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Err("empty record".into()),
            Err(e) => return Err(format!("invalid CSV: {e}")),
        }
        if record.len() != cols.len() {
            return Err(format!(
                "{} fields where the header names {} (a field with a line break must not be \
                 split across lines)",
                record.len(),
                cols.len()
            ));
        }
        let mut f = Fields::default();
        for (col, value) in cols.iter().zip(record.iter()) {
            let v = Some(value);
            match col {
                Column::Account => f.account = v,
                Column::Principal => f.principal = v,
                Column::Ip => f.ip = v,
                Column::Time => f.time = v,
                Column::Action => f.action = v,
                Column::UserAgent => f.user_agent = v,
                Column::Session => f.session = v,
                Column::Resource => f.resource = v,
                Column::EventId => f.event_id = v,
            }
        }
        parse_fields(&f, &self.cfg)
    }
}

/// Good events with their line numbers, and the refused lines.
pub type ParsedBody = (Vec<(u64, ParsedEvent)>, Vec<Rejected>);

/// A request body: a JSON array of events, or NDJSON (one object per line). Returns the
/// events and the rejected items (numbered from 1), or an error when the body as a whole is
/// not readable.
pub fn parse_body(body: &[u8], cfg: &ParseConfig) -> Result<ParsedBody, String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let mut good = Vec::new();
    let mut bad = Vec::new();
    if first == Some(&b'[') {
        let items: Vec<serde_json::Value> = serde_json::from_slice(body)
            .map_err(|e| format!("the body is not a JSON array of objects: {e}"))?;
        for (i, v) in items.into_iter().enumerate() {
            let line = i as u64 + 1;
            let bytes = serde_json::to_vec(&v).map_err(|e| e.to_string())?;
            match parse_json(&bytes, cfg) {
                Ok(ev) => good.push((line, ev)),
                Err(reason) => bad.push(Rejected { line, reason }),
            }
        }
        return Ok((good, bad));
    }
    let mut reader = EventReader::new(
        Box::new(std::io::Cursor::new(body.to_vec())),
        Format::Ndjson,
        *cfg,
        Start::default(),
    )
    .map_err(|e| e.to_string())?;
    while let Some(item) = reader.next_item().map_err(|e| e.to_string())? {
        match item.result {
            Ok(ev) => good.push((item.line, ev)),
            Err(r) => bad.push(r),
        }
    }
    Ok((good, bad))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cfg() -> ParseConfig {
        // 2026-06-01T00:00:00Z
        ParseConfig::new(1_780_272_000_000_000)
    }

    fn check(line: &str) -> Result<ParsedEvent, String> {
        parse_json(line.as_bytes(), &cfg())
    }

    #[test]
    fn good_line_parses() {
        let e = check(r#"{"account":"acct-1","principal":"alice","ip":"192.0.2.7","time":"2026-01-02T03:04:05+01:00","action":"login","user_agent":"curl/8"}"#).unwrap();
        assert_eq!(e.account, "acct-1");
        assert_eq!(crate::ip_from_key(e.ip).to_string(), "192.0.2.7");
        assert_eq!(
            e.at,
            "2026-01-02T02:04:05Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_microsecond()
        );
        assert_eq!(e.action, Action::Login);
        assert_eq!(e.user_agent.as_deref(), Some("curl/8"));
    }

    #[test]
    fn bad_fields_are_all_named() {
        let err = check(r#"{"account":"a","principal":"p","ip":"300.1.1.1","time":"2026-01-02T03:04:05","action":"dance"}"#).unwrap_err();
        assert!(err.contains("ip:"), "{err}");
        assert!(err.contains("time:"), "{err}");
        assert!(err.contains("action:"), "{err}");
        let err =
            check(r#"{"principal":"p","ip":"::1","time":"2026-01-02T03:04:05Z","action":"api"}"#)
                .unwrap_err();
        assert_eq!(err, "account: required");
        let err = check(r#"{"account":"a","principal":"p","ip":"::1","time":"2027-01-02T03:04:05Z","action":"api"}"#).unwrap_err();
        assert!(err.contains("in the future"), "{err}");
        let err = check(r#"{"account":"a","principal":"p","ip":"::1","time":"2026-01-02T03:04:05Z","action":"api","colour":"red"}"#).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn reader_reports_lines_and_offsets() {
        let good = r#"{"account":"a","principal":"p","ip":"2001:db8::1","time":"2026-01-02T03:04:05Z","action":"ssh"}"#;
        let long = format!(r#"{{"account":"{}"}}"#, "x".repeat(100));
        let mut input = Vec::new();
        input.extend_from_slice(good.as_bytes());
        input.extend_from_slice(b"\r\n\n");
        input.extend_from_slice(long.as_bytes());
        input.push(b'\n');
        input.extend_from_slice(b"{\"account\":\"\xff\"}\n");
        input.extend_from_slice(good.as_bytes());
        let mut c = cfg();
        c.max_line_bytes = good.len();
        let mut r = EventReader::new(
            Box::new(std::io::Cursor::new(input.clone())),
            Format::Ndjson,
            c,
            Start::default(),
        )
        .unwrap();
        let mut items = Vec::new();
        while let Some(i) = r.next_item().unwrap() {
            items.push(i);
        }
        assert_eq!(items.len(), 4);
        assert!(items[0].result.is_ok());
        assert_eq!(items[0].end_offset as usize, good.len() + 2);
        let e1 = items[1].result.as_ref().unwrap_err();
        assert_eq!(e1.line, 3);
        assert!(e1.reason.contains("longer than the limit"), "{}", e1.reason);
        let e2 = items[2].result.as_ref().unwrap_err();
        assert_eq!(e2.line, 4);
        assert!(e2.reason.contains("not UTF-8"), "{}", e2.reason);
        assert!(items[3].result.is_ok());
        assert_eq!(items[3].end_offset as usize, input.len());
        // Resume after the first line: the same remaining items, same numbers.
        let mut r = EventReader::new(
            Box::new(std::io::Cursor::new(input)),
            Format::Ndjson,
            c,
            Start {
                offset: items[0].end_offset,
                line: 1,
            },
        )
        .unwrap();
        let mut n = 0;
        let mut last_line = 0;
        while let Some(i) = r.next_item().unwrap() {
            n += 1;
            last_line = i.line;
        }
        assert_eq!((n, last_line), (3, 5));
    }

    #[test]
    fn csv_with_header_any_order() {
        let input = "time,action,ip,account,principal,user_agent\n\
                     2026-01-02T03:04:05Z,api,198.51.100.4,acct-9,key-1,\"Mozilla, 5.0\"\n\
                     2026-01-02T03:04:05Z,api,198.51.100.4\n";
        let mut r = EventReader::new(
            Box::new(std::io::Cursor::new(input.as_bytes().to_vec())),
            Format::Csv,
            cfg(),
            Start::default(),
        )
        .unwrap();
        let a = r.next_item().unwrap().unwrap();
        let ev = a.result.unwrap();
        assert_eq!(a.line, 2);
        assert_eq!(ev.user_agent.as_deref(), Some("Mozilla, 5.0"));
        let b = r.next_item().unwrap().unwrap();
        assert_eq!(b.line, 3);
        assert!(b.result.unwrap_err().reason.contains("3 fields"));
        assert!(r.next_item().unwrap().is_none());
        let bad = EventReader::new(
            Box::new(std::io::Cursor::new(b"account,when\n".to_vec())),
            Format::Csv,
            cfg(),
            Start::default(),
        );
        assert!(matches!(bad, Err(SourceError::Header(m)) if m.contains("`when`")));
    }

    #[test]
    fn body_array_and_ndjson() {
        let (good, bad) = parse_body(
            br#"[{"account":"a","principal":"p","ip":"::1","time":"2026-01-02T03:04:05Z","action":"api"}, {"account":"a"}]"#,
            &cfg(),
        )
        .unwrap();
        assert_eq!(good.len(), 1);
        assert_eq!(bad[0].line, 2);
        assert!(parse_body(b"[1,", &cfg()).is_err());
    }

    #[test]
    fn cidr_ranges() {
        let r = crate::IpRange::parse("192.0.2.0/24").unwrap();
        assert_eq!(crate::ip_from_key(r.first).to_string(), "192.0.2.0");
        assert_eq!(crate::ip_from_key(r.last).to_string(), "192.0.2.255");
        let r = crate::IpRange::parse("2001:db8::/32").unwrap();
        assert_eq!(
            crate::ip_from_key(r.last).to_string(),
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert!(crate::IpRange::parse("192.0.2.1/24").is_err());
        assert!(crate::IpRange::parse("192.0.2.0/33").is_err());
        assert!(crate::IpRange::parse("nope").is_err());
    }
}
