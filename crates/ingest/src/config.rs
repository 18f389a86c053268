//! The `[ingest]` section of the configuration: who may send, where to listen, how much
//! to admit at once, and where instances are spooled.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Smallest PDU we advertise (16 KiB). dicom-ul applies our maximum to the
/// A-ASSOCIATE-RQ as well, and a PACS proposing a hundred presentation contexts sends
/// one of 10-40 KiB, so a smaller maximum would refuse such associations.
const MIN_PDU_BYTES: u32 = 16 << 10;
/// Largest PDU we advertise: an association holds one PDU in memory besides its spool
/// buffer ([`PART_BUFFER_BYTES`](crate::spool::PART_BUFFER_BYTES)), so this bounds the
/// rest of its memory (16 MiB).
const MAX_PDU_BYTES: u32 = 16 << 20;

/// The DICOM listener: C-ECHO and C-STORE SCP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Our AE title; an association calling another AE title is rejected.
    pub ae_title: String,
    /// Address and port to listen on.
    pub bind: SocketAddr,
    /// Calling AEs allowed to associate. **Empty accepts any calling AE** (useful on a
    /// closed network or for a first installation; list the PACS nodes in production).
    pub allowed_calling_aes: Vec<AllowedPeer>,
    /// Associations served at once; one more is rejected (transient, local limit
    /// exceeded) so that the PACS retries later.
    pub max_associations: usize,
    /// Largest PDU we accept (our "maximum length received", 16 KiB to 16 MiB); what
    /// we send is bounded by the peer's own maximum. dicom-ul also applies it to the
    /// A-ASSOCIATE-RQ, hence the 16 KiB floor.
    pub max_pdu_bytes: u32,
    /// Time allowed for the A-ASSOCIATE-RQ to arrive once the TCP connection is
    /// accepted (the ARTIM timer of PS3.8 section 9.1.5), seconds.
    pub association_timeout_secs: u64,
    /// Longest silence inside an association before we abort it, seconds.
    pub read_timeout_secs: u64,
    /// Spool root: `tmp/` holds instances being received, `instances/` the durable ones.
    pub spool_dir: PathBuf,
    /// Free disk space under which instances are refused with 0xA700 (out of
    /// resources), so the PACS retries later, bytes.
    pub min_free_disk_bytes: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            ae_title: "SPINEWATCH".to_owned(),
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 11112),
            allowed_calling_aes: Vec::new(),
            max_associations: 8,
            max_pdu_bytes: 65_536,
            association_timeout_secs: 30,
            read_timeout_secs: 60,
            spool_dir: PathBuf::from("/var/spool/spinewatch"),
            min_free_disk_bytes: 1 << 30,
        }
    }
}

/// A calling AE allowed to associate, optionally only from one host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedPeer {
    /// The calling AE title (case-sensitive, as DICOM compares AE titles).
    pub ae_title: String,
    /// The only address it may connect from; `None` allows any address.
    #[serde(default)]
    pub host: Option<IpAddr>,
}

impl AllowedPeer {
    /// Whether an association from `calling_ae_title` at `peer` matches this entry.
    pub fn matches(&self, calling_ae_title: &str, peer: IpAddr) -> bool {
        self.ae_title == calling_ae_title
            && self
                .host
                .is_none_or(|h| h.to_canonical() == peer.to_canonical())
    }
}

impl IngestConfig {
    /// Checks the values a listener cannot run with; every error names the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        validate_ae_title("ae_title", &self.ae_title)?;
        for (i, p) in self.allowed_calling_aes.iter().enumerate() {
            validate_ae_title(&format!("allowed_calling_aes[{i}].ae_title"), &p.ae_title)?;
        }
        if self.max_associations == 0 {
            return bad("max_associations must be at least 1".to_owned());
        }
        if !(MIN_PDU_BYTES..=MAX_PDU_BYTES).contains(&self.max_pdu_bytes) {
            return bad(format!(
                "max_pdu_bytes {} out of range {MIN_PDU_BYTES}-{MAX_PDU_BYTES}",
                self.max_pdu_bytes
            ));
        }
        if self.association_timeout_secs == 0 || self.read_timeout_secs == 0 {
            return bad("association_timeout_secs and read_timeout_secs must be positive".into());
        }
        if self.spool_dir.as_os_str().is_empty() {
            return bad("spool_dir is empty".to_owned());
        }
        Ok(())
    }

    /// [`Self::association_timeout_secs`] as a duration.
    pub fn association_timeout(&self) -> Duration {
        Duration::from_secs(self.association_timeout_secs)
    }

    /// [`Self::read_timeout_secs`] as a duration.
    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.read_timeout_secs)
    }
}

/// AE titles: 1-16 characters of the default repertoire, no backslash or control
/// character, not only spaces (PS3.5 section 6.2, VR AE).
fn validate_ae_title(key: &str, ae: &str) -> Result<()> {
    let ok = !ae.trim().is_empty()
        && ae.len() <= 16
        && ae.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{key} `{ae}` is not a valid AE title (1-16 printable ASCII characters, no backslash)"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        IngestConfig::default().validate().unwrap();
    }

    #[test]
    fn deserializes_with_defaults_for_missing_keys() {
        let c: IngestConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, IngestConfig::default());
        let c: IngestConfig = serde_json::from_str(
            r#"{"ae_title": "SW", "allowed_calling_aes": [
                {"ae_title": "PACS", "host": "10.0.0.1"}, {"ae_title": "MODALITY"}]}"#,
        )
        .unwrap();
        assert_eq!(c.ae_title, "SW");
        assert_eq!(
            c.allowed_calling_aes[0].host,
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(c.allowed_calling_aes[1].host, None);
        assert_eq!(c.max_associations, 8);
        assert!(serde_json::from_str::<IngestConfig>(r#"{"max_assocs": 1}"#).is_err());
    }

    #[test]
    fn rejects_bad_values() {
        let mut c = IngestConfig {
            ae_title: "A\\B".into(),
            ..Default::default()
        };
        assert!(c.validate().is_err());
        c.ae_title = "THIS_IS_LONGER_THAN_16".into();
        assert!(c.validate().is_err());
        c.ae_title = "OK".into();
        c.max_associations = 0;
        assert!(c.validate().is_err());
        c.max_associations = 1;
        c.max_pdu_bytes = 10;
        assert!(c.validate().is_err());
    }

    #[test]
    fn allowed_peer_matches_ae_and_host() {
        let any = AllowedPeer {
            ae_title: "PACS".into(),
            host: None,
        };
        let one = AllowedPeer {
            ae_title: "PACS".into(),
            host: Some("10.0.0.1".parse().unwrap()),
        };
        let from = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(any.matches("PACS", from("10.9.9.9")));
        assert!(!any.matches("pacs", from("10.9.9.9")));
        assert!(one.matches("PACS", from("10.0.0.1")));
        assert!(one.matches("PACS", from("::ffff:10.0.0.1")));
        assert!(!one.matches("PACS", from("10.0.0.2")));
    }
}
