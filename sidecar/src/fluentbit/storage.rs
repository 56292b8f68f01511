//! Fluent Bit's filesystem buffering, served by Sluice's spool.
//!
//! An input with `storage.type filesystem` (its own, or inherited from
//! `[SERVICE]` with `storage.inherit On`) asks Fluent Bit to keep its
//! records in `[SERVICE] storage.path` until they are sent, so that a
//! restart loses none (AWS's out-of-memory prevention example). Sluice's
//! spool does that for every record the CloudWatch outputs take, whatever
//! its input: with one such input (forward, tcp or tail, the inputs Sluice
//! serves), the spool is opened in `storage.path`, in place of
//! `spool.dir`, as `[SERVICE] HTTP_Server` replaces `admin.listen`.
//!
//! - `storage.total_limit_size` on the CloudWatch outputs bounds the spool
//!   (their sum: each bounds its own chunks in Fluent Bit); without it,
//!   `spool.max_size` does.
//! - `storage.sync full` fsyncs before every ack whatever `spool.fsync`
//!   says; `normal` leaves `spool.fsync` to decide.
//! - A filesystem input without `storage.path` is refused, as Fluent Bit
//!   refuses it.

use std::path::PathBuf;

use super::classic::{Section, SectionKind};
use crate::config::ConfigError;
use crate::spool::{SpoolConfig, SpoolLimits};

/// The inputs Sluice serves.
const SERVED_INPUTS: [&str; 3] = ["forward", "tcp", "tail"];

/// The smallest spool: two segments of the smallest size.
const MIN_SPOOL_BYTES: u64 = 128 << 10;

/// Where and how much a configuration buffers on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storage {
    /// `[SERVICE] storage.path`: the spool's directory.
    pub path: PathBuf,
    /// The CloudWatch outputs' `storage.total_limit_size`, summed.
    pub total_limit: Option<u64>,
    /// `[SERVICE] storage.sync full`.
    pub sync_full: bool,
}

impl Storage {
    /// The spool this storage asks for, with `[spool]`'s other settings.
    pub fn spool(&self, limits: SpoolLimits) -> SpoolConfig {
        let max_size = self.total_limit.unwrap_or(limits.max_size);
        SpoolConfig {
            dir: self.path.clone(),
            max_size,
            // At least two segments fit.
            segment_size: limits.segment_size.min(max_size / 2),
            fsync: limits.fsync || self.sync_full,
        }
    }
}

/// The `storage.*` keys this module reads, by section, lower-cased; the
/// plan leaves them out of its notes.
pub fn reads(kind: SectionKind, plugin: &str, key: &str) -> bool {
    match kind {
        SectionKind::Service => matches!(
            key,
            "storage.path" | "storage.sync" | "storage.type" | "storage.inherit"
        ),
        SectionKind::Input => SERVED_INPUTS.contains(&plugin) && key == "storage.type",
        SectionKind::Output => {
            matches!(plugin, "cloudwatch_logs" | "cloudwatch") && key == "storage.total_limit_size"
        }
        _ => false,
    }
}

/// The storage `sections` ask for, if any; what does not apply is noted.
pub fn plan(
    sections: &[Section],
    notes: &mut Vec<String>,
) -> Result<Option<Storage>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let error = |section: &Section, message: String| ConfigError {
        key: section.at.clone(),
        message,
    };
    let (mut path, mut sync_full, mut inherited_fs) = (None, false, false);
    for s in sections.iter().filter(|s| s.kind == SectionKind::Service) {
        if let Some(p) = s.get("storage.path").filter(|p| !p.trim().is_empty()) {
            path = Some((s, PathBuf::from(p.trim())));
        }
        match s.get("storage.sync").map(|v| v.trim().to_ascii_lowercase()) {
            None => {}
            Some(v) if v == "normal" => sync_full = false,
            Some(v) if v == "full" => sync_full = true,
            Some(v) => errors.push(error(
                s,
                format!("[SERVICE] storage.sync {v:?} is not normal or full"),
            )),
        }
        let inherit = match s.get("storage.inherit") {
            None => false,
            Some(v) => crate::config::layer::fluent_bool(v).unwrap_or_else(|| {
                errors.push(error(
                    s,
                    format!("[SERVICE] storage.inherit {v:?} is not On or Off"),
                ));
                false
            }),
        };
        if let Some(t) = s.get("storage.type") {
            match storage_type(t) {
                Ok(fs) => inherited_fs = inherit && fs,
                Err(m) => errors.push(error(s, format!("[SERVICE] {m}"))),
            }
        }
    }
    let mut filesystem_inputs = Vec::new();
    for s in sections
        .iter()
        .filter(|s| s.kind == SectionKind::Input && SERVED_INPUTS.contains(&s.plugin().as_str()))
    {
        let fs = match s.get("storage.type") {
            None => inherited_fs,
            Some(t) => storage_type(t).unwrap_or_else(|m| {
                errors.push(error(s, format!("[INPUT] {} {m}", s.plugin())));
                false
            }),
        };
        if fs {
            filesystem_inputs.push(s);
        }
    }
    let (mut total_limit, mut limit_at) = (None, None);
    for s in sections.iter().filter(|s| {
        s.kind == SectionKind::Output
            && matches!(s.plugin().as_str(), "cloudwatch_logs" | "cloudwatch")
    }) {
        if let Some(v) = s.get("storage.total_limit_size") {
            match fluent_size(v) {
                Some(bytes) if bytes >= MIN_SPOOL_BYTES => {
                    total_limit = Some(total_limit.unwrap_or(0u64).saturating_add(bytes));
                    limit_at.get_or_insert(s.at.as_str());
                }
                _ => errors.push(error(
                    s,
                    format!(
                        "[OUTPUT] {} storage.total_limit_size {v:?} is not a size of at least 128K (such as 500M or 1G)",
                        s.plugin()
                    ),
                )),
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let Some(first) = filesystem_inputs.first() else {
        if let Some((s, p)) = path {
            notes.push(format!(
                "{}: [SERVICE] storage.path {} is not used: no input has storage.type filesystem, so records are held in memory, as in Fluent Bit",
                s.at,
                p.display()
            ));
        }
        if let Some(at) = limit_at {
            notes.push(format!(
                "{at}: [OUTPUT] storage.total_limit_size is not used: no input has storage.type filesystem, as in Fluent Bit"
            ));
        }
        return Ok(None);
    };
    let Some((_, path)) = path else {
        return Err(vec![error(
            first,
            format!(
                "[INPUT] {} storage.type filesystem needs [SERVICE] storage.path, as in Fluent Bit",
                first.plugin()
            ),
        )]);
    };
    Ok(Some(Storage {
        path,
        total_limit,
        sync_full,
    }))
}

/// `storage.type`: whether it is `filesystem`.
fn storage_type(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "filesystem" => Ok(true),
        "memory" | "memrb" => Ok(false),
        other => Err(format!(
            "storage.type {other:?} is not filesystem, memory or memrb"
        )),
    }
}

/// A size as Fluent Bit's `flb_utils_size_to_bytes` reads it: a number,
/// with `K`, `M` or `G` (and an optional `B`) for powers of 1,000.
pub fn fluent_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let unit_at = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let number: f64 = number.trim_end().parse().ok()?;
    let multiplier = match unit.to_ascii_uppercase().as_str() {
        "" => 1.0,
        "K" | "KB" => 1e3,
        "M" | "MB" => 1e6,
        "G" | "GB" => 1e9,
        _ => return None,
    };
    let bytes = number * multiplier;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fluentbit::tests::section;

    const LIMITS: SpoolLimits = SpoolLimits {
        max_size: 256 << 20,
        segment_size: 8 << 20,
        fsync: false,
    };

    fn service(entries: &[(&str, &str)]) -> Section {
        section(SectionKind::Service, "f.conf:1", &[], entries)
    }

    fn forward(entries: &[(&str, &str)]) -> Section {
        section(
            SectionKind::Input,
            "f.conf:5",
            &[("Name", "forward")],
            entries,
        )
    }

    fn cloudwatch(limit: &str) -> Section {
        section(
            SectionKind::Output,
            "f.conf:9",
            &[
                ("Name", "cloudwatch_logs"),
                ("storage.total_limit_size", limit),
            ],
            &[],
        )
    }

    fn read(sections: &[Section]) -> Result<(Option<Storage>, Vec<String>), Vec<String>> {
        let mut notes = Vec::new();
        plan(sections, &mut notes)
            .map(|s| (s, notes))
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_filesystem_input_puts_the_spool_in_storage_path() {
        let (storage, notes) = read(&[
            service(&[
                ("storage.path", "/var/log/flb-storage/"),
                ("storage.sync", "full"),
            ]),
            forward(&[
                ("unix_path", "/var/run/fluent.sock"),
                ("storage.type", "filesystem"),
            ]),
            forward(&[("Port", "24224")]),
            cloudwatch("1G"),
            cloudwatch("500M"),
        ])
        .unwrap();
        let storage = storage.unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            storage.spool(LIMITS),
            SpoolConfig {
                dir: PathBuf::from("/var/log/flb-storage/"),
                max_size: 1_500_000_000,
                segment_size: 8 << 20,
                fsync: true,
            }
        );
        // Without a limit, spool.max_size; a small one halves the segments.
        let small = Storage {
            total_limit: Some(1_000_000),
            ..storage.clone()
        };
        assert_eq!(
            (
                small.spool(LIMITS).max_size,
                small.spool(LIMITS).segment_size
            ),
            (1_000_000, 500_000)
        );
        let none = Storage {
            total_limit: None,
            sync_full: false,
            ..storage
        };
        assert_eq!(
            none.spool(LIMITS),
            SpoolConfig {
                dir: PathBuf::from("/var/log/flb-storage/"),
                max_size: 256 << 20,
                segment_size: 8 << 20,
                fsync: false,
            }
        );
    }

    #[test]
    fn inputs_inherit_the_service_s_type_only_when_told() {
        let sections = |inherit: &str| {
            vec![
                service(&[
                    ("storage.path", "/s"),
                    ("storage.type", "filesystem"),
                    ("storage.inherit", inherit),
                ]),
                forward(&[]),
            ]
        };
        assert_eq!(
            read(&sections("On")).unwrap().0.unwrap().path,
            PathBuf::from("/s")
        );
        let (storage, notes) = read(&sections("Off")).unwrap();
        assert_eq!(storage, None);
        assert_eq!(
            notes,
            ["f.conf:1: [SERVICE] storage.path /s is not used: no input has storage.type filesystem, so records are held in memory, as in Fluent Bit"]
        );
        // Any input Sluice serves: AWS's example buffers a tcp input.
        let tcp = section(
            SectionKind::Input,
            "f.conf:7",
            &[("Name", "tcp"), ("storage.type", "filesystem")],
            &[],
        );
        let (storage, _) = read(&[service(&[("storage.path", "/s")]), tcp]).unwrap();
        assert_eq!(storage.unwrap().path, PathBuf::from("/s"));
        let (_, notes) = read(&[forward(&[]), cloudwatch("1G")]).unwrap();
        assert_eq!(
            notes,
            ["f.conf:9: [OUTPUT] storage.total_limit_size is not used: no input has storage.type filesystem, as in Fluent Bit"]
        );
        // An input's own type wins over the inherited one.
        let mut own = sections("On");
        own[1] = forward(&[("storage.type", "memory")]);
        assert_eq!(read(&own).unwrap().0, None);
    }

    #[test]
    fn wrong_storage_is_refused_naming_the_key() {
        assert_eq!(
            read(&[forward(&[("storage.type", "filesystem")])]).unwrap_err(),
            ["f.conf:5: [INPUT] forward storage.type filesystem needs [SERVICE] storage.path, as in Fluent Bit"]
        );
        assert_eq!(
            read(&[forward(&[("storage.type", "disk")])]).unwrap_err(),
            ["f.conf:5: [INPUT] forward storage.type \"disk\" is not filesystem, memory or memrb"]
        );
        assert_eq!(
            read(&[service(&[("storage.sync", "always")])]).unwrap_err(),
            ["f.conf:1: [SERVICE] storage.sync \"always\" is not normal or full"]
        );
        for limit in ["lots", "100K", "1T"] {
            assert_eq!(
                read(&[cloudwatch(limit)]).unwrap_err(),
                [format!("f.conf:9: [OUTPUT] cloudwatch_logs storage.total_limit_size {limit:?} is not a size of at least 128K (such as 500M or 1G)")]
            );
        }
    }

    #[test]
    fn sizes_read_as_fluent_bit_reads_them() {
        for (text, bytes) in [
            ("1G", Some(1_000_000_000)),
            ("1gb", Some(1_000_000_000)),
            ("500M", Some(500_000_000)),
            ("1.5M", Some(1_500_000)),
            ("128K", Some(128_000)),
            ("2048", Some(2048)),
            ("5 MB", Some(5_000_000)),
            ("1MiB", None),
            ("M", None),
            ("-1M", None),
        ] {
            assert_eq!(fluent_size(text), bytes, "{text}");
        }
    }
}
