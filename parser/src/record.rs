//! The normalised access record, borrowing from the line it was parsed from.

use std::borrow::Cow;
use std::mem::ManuallyDrop;

use crate::field::Field;
use crate::json_out::JsonOut;

/// One value of an access record.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// Text; borrowed from the line unless unescaping or redaction changed it.
    Str(Cow<'a, str>),
    /// A non-negative integer (status codes, byte counts, milliseconds, ports).
    UInt(u64),
    /// JSON text copied verbatim from a JSON line: a number that does not fit
    /// [`Value::UInt`], a boolean, an object or an array.
    Raw(Cow<'a, str>),
}

impl Value<'_> {
    /// The value as text, if it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an unsigned integer, if it is one.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::UInt(n) => Some(*n),
            _ => None,
        }
    }

    /// Appends the value as JSON.
    pub fn write_json(&self, out: &mut (impl JsonOut + ?Sized)) {
        match self {
            Value::Str(s) => out.string(s),
            Value::UInt(n) => out.uint(*n),
            Value::Raw(r) => out.text(r),
        }
    }

    /// Whether the value holds memory of its own (text that unescaping or
    /// redaction changed), which dropping it must free. Exhaustive, so that
    /// a new variant has to say.
    fn owns_memory(&self) -> bool {
        match self {
            Value::Str(text) | Value::Raw(text) => matches!(text, Cow::Owned(_)),
            Value::UInt(_) => false,
        }
    }

    /// Detaches the value from the line it borrows from.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::UInt(n) => Value::UInt(n),
            Value::Raw(r) => Value::Raw(Cow::Owned(r.into_owned())),
        }
    }
}

/// What an extra field holds, which decides how redaction treats it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Nothing redaction needs to know about.
    Plain,
    /// A URL or a request target whose query string is redacted.
    Url,
    /// The value of the query parameter with this (lower-case) name, as
    /// `%QUERY_PARAM(name)%` prints it.
    QueryParam(String),
}

/// A field without a dedicated [`Field`]: named after its operator or its JSON key.
#[derive(Clone, Debug, PartialEq)]
pub struct Extra<'a> {
    pub name: Cow<'a, str>,
    pub value: Value<'a>,
    pub role: Role,
}

/// Whether a record describes an HTTP request or a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Tcp,
}

/// The dedicated fields' values, indexed by [`Field::index`].
///
/// The compiler's drop of 22 `Option<Value>`s jumps through a table on each
/// slot's variant, and as the present fields vary from line to line those
/// jumps mispredict: a tenth of the time to parse a default-format line.
/// Nearly every value borrows from the line, so the slots keep a mask of
/// those that may own memory, and only those are dropped.
#[derive(Clone, Debug)]
struct Known<'a> {
    slots: ManuallyDrop<[Option<Value<'a>>; Field::COUNT]>,
    /// Bit `i`: slot `i` may hold a value that owns memory. Set when one is
    /// stored, and whenever the slot is lent out to be changed.
    may_own: u32,
}

const _: () = assert!(Field::COUNT <= u32::BITS as usize);

impl<'a> Known<'a> {
    fn empty() -> Self {
        Known {
            slots: ManuallyDrop::new(std::array::from_fn(|_| None)),
            may_own: 0,
        }
    }

    fn get(&self, i: usize) -> Option<&Value<'a>> {
        self.slots[i].as_ref()
    }

    fn set(&mut self, i: usize, value: Option<Value<'a>>) {
        let owns = value.as_ref().is_some_and(Value::owns_memory);
        let old = std::mem::replace(&mut self.slots[i], value);
        self.forget_or_drop(i, old);
        self.may_own |= u32::from(owns) << i;
    }

    fn get_mut(&mut self, i: usize) -> &mut Option<Value<'a>> {
        self.may_own |= 1 << i;
        &mut self.slots[i]
    }

    /// Empties every slot, freeing only what may own memory.
    fn clear(&mut self) {
        for i in 0..Field::COUNT {
            let old = self.slots[i].take();
            self.forget_or_drop(i, old);
        }
        self.may_own = 0;
    }

    /// Takes every value out, leaving the slots empty.
    fn take_all(&mut self) -> [Option<Value<'a>>; Field::COUNT] {
        self.may_own = 0;
        std::array::from_fn(|i| self.slots[i].take())
    }

    fn forget_or_drop(&self, i: usize, old: Option<Value<'a>>) {
        if self.may_own & (1 << i) != 0 {
            drop(old);
        } else {
            // Borrowed text, a number or nothing: there is nothing to free.
            std::mem::forget(old);
        }
    }
}

impl PartialEq for Known<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.slots == other.slots
    }
}

impl Drop for Known<'_> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A parsed Envoy access-log record.
///
/// Values borrow from the line; absent values (`-`, `null`, empty) are `None`.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessRecord<'a> {
    known: Known<'a>,
    extras: Vec<Extra<'a>>,
    start_time_ms: Option<i64>,
}

impl Default for AccessRecord<'_> {
    fn default() -> Self {
        AccessRecord {
            known: Known::empty(),
            extras: Vec::new(),
            start_time_ms: None,
        }
    }
}

/// Output keys that the record itself never uses; an extra field with one of
/// these names is written as `envoy_<name>` so that it cannot shadow them.
const RESERVED_KEYS: [&str; 3] = ["kind", "route", "log"];

impl<'a> AccessRecord<'a> {
    /// Removes every value, keeping the extras' allocation.
    pub(crate) fn clear(&mut self) {
        self.known.clear();
        self.extras.clear();
        self.start_time_ms = None;
    }

    /// The value of a dedicated field.
    pub fn get(&self, field: Field) -> Option<&Value<'a>> {
        self.known.get(field.index())
    }

    /// The value of a dedicated field, as text.
    pub fn str(&self, field: Field) -> Option<&str> {
        self.get(field).and_then(Value::as_str)
    }

    /// The value of a dedicated field, as an unsigned integer.
    pub fn uint(&self, field: Field) -> Option<u64> {
        self.get(field).and_then(Value::as_u64)
    }

    /// Sets (or with `None`, clears) a dedicated field.
    pub fn set(&mut self, field: Field, value: Option<Value<'a>>) {
        self.known.set(field.index(), value);
    }

    pub(crate) fn known_mut(&mut self, field: Field) -> &mut Option<Value<'a>> {
        self.known.get_mut(field.index())
    }

    /// Fields without a dedicated name, in the order the format gave them.
    pub fn extras(&self) -> &[Extra<'a>] {
        &self.extras
    }

    pub(crate) fn extras_mut(&mut self) -> &mut Vec<Extra<'a>> {
        &mut self.extras
    }

    /// The value of an extra field by name.
    pub fn extra(&self, name: &str) -> Option<&Value<'a>> {
        self.extras
            .iter()
            .find(|e| e.name == name)
            .map(|e| &e.value)
    }

    pub(crate) fn push_extra(&mut self, name: Cow<'a, str>, value: Value<'a>, role: Role) {
        self.extras.push(Extra { name, value, role });
    }

    /// `start_time` as milliseconds since the Unix epoch, when it could be read.
    /// This is the timestamp CloudWatch Logs wants.
    pub fn start_time_ms(&self) -> Option<i64> {
        self.start_time_ms
    }

    pub(crate) fn set_start_time_ms(&mut self, ms: Option<i64>) {
        self.start_time_ms = ms;
    }

    /// HTTP unless the record has no request fields but has TCP connection fields.
    pub fn protocol(&self) -> Protocol {
        let has_http = [Field::Method, Field::Path, Field::ResponseCode]
            .iter()
            .any(|f| self.get(*f).is_some());
        let has_tcp = [Field::DownstreamRemoteAddress, Field::ConnectionId]
            .iter()
            .any(|f| self.get(*f).is_some());
        if !has_http && has_tcp {
            Protocol::Tcp
        } else {
            Protocol::Http
        }
    }

    /// Every present field as `(key, value)`: dedicated fields first, in
    /// [`Field::ALL`] order, then extras in format order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &Value<'a>)> {
        let known = Field::ALL
            .iter()
            .filter_map(|f| self.get(*f).map(|v| (f.name(), v)));
        let extras = self.extras.iter().map(|e| (e.name.as_ref(), &e.value));
        known.chain(extras)
    }

    /// Appends the fields as JSON object members (`"key":value,...`) without
    /// braces, so callers can add their own members before or after.
    /// Returns whether anything was written.
    pub fn write_json_members(&self, out: &mut (impl JsonOut + ?Sized)) -> bool {
        self.write_json_members_except(out, None)
    }

    /// [`AccessRecord::write_json_members`] without `skip`'s member.
    pub fn write_json_members_except(
        &self,
        out: &mut (impl JsonOut + ?Sized),
        skip: Option<Field>,
    ) -> bool {
        let mut first = true;
        for field in Field::ALL {
            let Some(value) = self.get(field).filter(|_| Some(field) != skip) else {
                continue;
            };
            if !first {
                out.char(',');
            }
            first = false;
            out.field_member(field);
            value.write_json(out);
        }
        for extra in &self.extras {
            if !first {
                out.char(',');
            }
            first = false;
            let name = extra.name.as_ref();
            if RESERVED_KEYS.contains(&name) {
                out.text("\"envoy_");
                out.text(name);
                out.char('"');
            } else {
                out.string(name);
            }
            out.char(':');
            extra.value.write_json(out);
        }
        !first
    }

    /// Detaches the record from the line it borrows from.
    pub fn into_owned(mut self) -> AccessRecord<'static> {
        AccessRecord {
            known: Known {
                slots: ManuallyDrop::new(self.known.take_all().map(|v| v.map(Value::into_owned))),
                may_own: u32::MAX,
            },
            extras: self
                .extras
                .into_iter()
                .map(|e| Extra {
                    name: Cow::Owned(e.name.into_owned()),
                    value: e.value.into_owned(),
                    role: e.role,
                })
                .collect(),
            start_time_ms: self.start_time_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_members_in_canonical_order_with_reserved_extras_renamed() {
        let mut r = AccessRecord::default();
        r.set(Field::Path, Some(Value::Str("/a\"b".into())));
        r.set(Field::Method, Some(Value::Str("GET".into())));
        r.set(Field::ResponseCode, Some(Value::UInt(200)));
        r.push_extra("kind".into(), Value::Raw("true".into()), Role::Plain);
        let mut out = String::new();
        assert!(r.write_json_members(&mut out));
        assert_eq!(
            out,
            r#""method":"GET","path":"/a\"b","response_code":200,"envoy_kind":true"#
        );
    }

    #[test]
    fn protocol_is_tcp_only_without_request_fields() {
        let mut r = AccessRecord::default();
        r.set(Field::ConnectionId, Some(Value::Str("7".into())));
        assert_eq!(r.protocol(), Protocol::Tcp);
        r.set(Field::ResponseCode, Some(Value::UInt(200)));
        assert_eq!(r.protocol(), Protocol::Http);
    }
}
