//! Value types of the configuration that are more than a string or a
//! number: durations, sizes, file modes, lists that may be comma-separated.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::layer::COMMA_LIST;

/// A duration: `"500ms"`, `"30s"`, `"5m"`, `"1h 30m"` (humantime), or an
/// integer of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\"")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Seconds, E> {
                Ok(Seconds(Duration::from_secs(n)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Seconds, E> {
                u64::try_from(n)
                    .map(|n| Seconds(Duration::from_secs(n)))
                    .map_err(|_| E::custom(format!("{n} is negative; expected a duration")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Seconds, E> {
                let t = s.trim();
                if let Ok(n) = t.parse::<u64>() {
                    return Ok(Seconds(Duration::from_secs(n)));
                }
                humantime::parse_duration(t).map(Seconds).map_err(|_| {
                    E::custom(format!(
                        "{s:?} is not a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\""
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes: `"64MiB"`, `"512KiB"`, `"1GiB"` (bytesize: `KB`, `MB`
/// and `GB` are decimal), or an integer of bytes. Never zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as \"64MiB\"")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Bytes, E> {
                if n == 0 {
                    return Err(E::custom("0 is not a size; expected at least 1 byte"));
                }
                Ok(Bytes(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Bytes, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!("{n} is not a size such as \"64MiB\""))),
                }
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Bytes, E> {
                let bad = || E::custom(format!("{s:?} is not a size such as \"64MiB\""));
                let size: bytesize::ByteSize = s.trim().parse().map_err(|_| bad())?;
                if size.as_u64() == 0 {
                    return Err(bad());
                }
                Ok(Bytes(size.as_u64()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A unix file mode: `"0600"` (octal text) or an integer (`0o600`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FileMode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an octal file mode such as \"0600\"")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<FileMode, E> {
                u32::try_from(n)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .map(FileMode)
                    .ok_or_else(|| E::custom(format!("{n} is not a file mode from 0 to 0o777")))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<FileMode, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<FileMode, E> {
                let digits = s.trim().trim_start_matches("0o");
                u32::from_str_radix(digits, 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .map(FileMode)
                    .ok_or_else(|| {
                        E::custom(format!("{s:?} is not an octal file mode such as \"0600\""))
                    })
            }
        }
        d.deserialize_any(V)
    }
}

/// A list of strings; from text (an environment variable) it may also be
/// comma-separated. In the file it is always an array.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommaList(pub Vec<String>);

impl<'de> Deserialize<'de> for CommaList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CommaList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<CommaList, D::Error> {
                Vec::<String>::deserialize(d).map(CommaList)
            }
        }
        d.deserialize_newtype_struct(COMMA_LIST, V)
    }
}
