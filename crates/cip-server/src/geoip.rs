//! IP geolocation: the country of an address, from a MaxMind DB file (GeoLite2/GeoIP2
//! Country or City, `.mmdb`) named by the `geoip_db` setting.
//!
//! Behind a trait, [`Geolocate`], so the server runs without a database: every country is
//! then unknown, and the responses that carry countries say so ([`GeoSource`]). Lookups are
//! made when the access record is read, not when events are ingested (docs/design/0012): a
//! lookup costs about a microsecond, an account has tens of distinct addresses, and a newer
//! database then applies to the whole record at once.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use cip_core::parse::CountryCode;
use serde::Serialize;
use utoipa::ToSchema;

/// Where countries come from, stated in every response that carries them.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct GeoSource {
    /// false when no `geoip_db` is configured: every country is then unknown (null).
    pub available: bool,
    /// The database's type and build date, e.g. `GeoLite2-Country 2026-11-28`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// The country of an IP address.
pub trait Geolocate: Send + Sync + 'static {
    /// The ISO 3166-1 country of the address, `None` when unknown (not in the database,
    /// no database, a reserved range).
    fn country(&self, ip: IpAddr) -> Option<CountryCode>;
    fn source(&self) -> GeoSource;
}

/// No database configured: every country is unknown.
pub struct NoGeolocation;

impl Geolocate for NoGeolocation {
    fn country(&self, _ip: IpAddr) -> Option<CountryCode> {
        None
    }
    fn source(&self) -> GeoSource {
        GeoSource {
            available: false,
            database: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("geoip_db: {path}: {message}")]
pub struct GeoIpError {
    pub path: PathBuf,
    pub message: String,
}

/// A MaxMind DB file held in memory (GeoLite2-Country is ~9 MB, GeoLite2-City ~70 MB).
pub struct MaxMind {
    reader: maxminddb::Reader<Vec<u8>>,
    label: String,
}

impl MaxMind {
    /// Opens and checks the whole file (search tree, data section, metadata): a truncated or
    /// corrupt file is refused here, at start-up, not at the first lookup. Only databases
    /// whose records carry `country.iso_code` (Country, City, Enterprise) are accepted.
    pub fn open(path: &Path) -> Result<Self, GeoIpError> {
        let err = |message: String| GeoIpError {
            path: path.to_path_buf(),
            message,
        };
        let reader = maxminddb::Reader::open_readfile(path)
            .map_err(|e| err(format!("not a readable MaxMind DB file: {e}")))?;
        reader
            .verify()
            .map_err(|e| err(format!("the file is corrupt: {e}")))?;
        let meta = reader.metadata();
        let ty = meta.database_type.clone();
        if !(ty.contains("Country") || ty.contains("City") || ty.contains("Enterprise")) {
            return Err(err(format!(
                "database type `{ty}` does not give countries; use a GeoLite2/GeoIP2 Country or City database"
            )));
        }
        let built = jiff::Timestamp::from_second(meta.build_epoch as i64)
            .map(|t| t.strftime("%Y-%m-%d").to_string())
            .unwrap_or_else(|_| "unknown build".into());
        Ok(MaxMind {
            label: format!("{ty} {built}"),
            reader,
        })
    }
}

impl Geolocate for MaxMind {
    fn country(&self, ip: IpAddr) -> Option<CountryCode> {
        let found = self.reader.lookup(ip).ok()?;
        let code: Option<&str> = found
            .decode_path(&[
                maxminddb::PathElement::Key("country"),
                maxminddb::PathElement::Key("iso_code"),
            ])
            .ok()
            .flatten();
        code.and_then(|c| CountryCode::parse(c).ok())
    }

    fn source(&self) -> GeoSource {
        GeoSource {
            available: true,
            database: Some(self.label.clone()),
        }
    }
}

/// The geolocation the configuration asks for.
pub fn open(path: Option<&Path>) -> Result<std::sync::Arc<dyn Geolocate>, GeoIpError> {
    Ok(match path {
        None => std::sync::Arc::new(NoGeolocation),
        Some(p) => std::sync::Arc::new(MaxMind::open(p)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_db(dir: &Path) -> PathBuf {
        use mmdb_writer::{Value, Writer};
        let mut w = Writer::builder("GeoLite2-Country")
            .description(&[("en", "cip test database (documentation ranges)")])
            .build();
        for (net, cc) in [
            ("192.0.2.0/24", "US"),
            ("198.51.100.0/24", "DE"),
            ("2001:db8::/32", "FR"),
        ] {
            w.insert_value(
                net.parse::<ipnet::IpNet>().unwrap(),
                Value::map([("country", Value::map([("iso_code", Value::from(cc))]))]),
            )
            .unwrap();
        }
        let path = dir.join("test.mmdb");
        std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
        path
    }

    #[test]
    fn countries_of_documentation_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let g = MaxMind::open(&write_db(dir.path())).unwrap();
        let c = |s: &str| {
            g.country(s.parse().unwrap())
                .map(|c| c.as_str().to_string())
        };
        assert_eq!(c("192.0.2.7").as_deref(), Some("US"));
        assert_eq!(c("198.51.100.250").as_deref(), Some("DE"));
        assert_eq!(c("2001:db8::1").as_deref(), Some("FR"));
        assert_eq!(c("203.0.113.9"), None, "not in the database");
        assert!(g.source().available);
        assert!(
            g.source()
                .database
                .unwrap()
                .starts_with("GeoLite2-Country ")
        );
        assert_eq!(NoGeolocation.country("192.0.2.7".parse().unwrap()), None);
        assert!(!NoGeolocation.source().available);
    }

    #[test]
    fn missing_corrupt_or_wrong_files_are_refused_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = MaxMind::open(&dir.path().join("nope.mmdb")).err().unwrap();
        assert!(missing.to_string().starts_with("geoip_db: "), "{missing}");
        let good = std::fs::read(write_db(dir.path())).unwrap();
        let truncated = dir.path().join("truncated.mmdb");
        std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
        let e = MaxMind::open(&truncated).err().unwrap();
        assert!(e.to_string().starts_with("geoip_db: "), "{e}");
        // Flip bytes in the search tree: the metadata still reads, verify() must refuse.
        let mut flipped = good.clone();
        for b in flipped.iter_mut().take(64) {
            *b = 0xff;
        }
        let corrupt = dir.path().join("corrupt.mmdb");
        std::fs::write(&corrupt, &flipped).unwrap();
        let e = MaxMind::open(&corrupt).err().unwrap();
        assert!(e.to_string().contains("corrupt"), "{e}");
        let garbage = dir.path().join("garbage.mmdb");
        std::fs::write(&garbage, b"not a database").unwrap();
        assert!(MaxMind::open(&garbage).is_err());
        let mut w = mmdb_writer::Writer::builder("GeoLite2-ASN")
            .description(&[("en", "cip test database")])
            .build();
        w.insert_value(
            "192.0.2.0/24".parse::<ipnet::IpNet>().unwrap(),
            mmdb_writer::Value::map([("autonomous_system_number", mmdb_writer::Value::from(1u32))]),
        )
        .unwrap();
        let asn = dir.path().join("asn.mmdb");
        std::fs::write(&asn, w.to_bytes().unwrap()).unwrap();
        let e = MaxMind::open(&asn).err().unwrap();
        assert!(e.to_string().contains("GeoLite2-ASN"), "{e}");
    }
}
