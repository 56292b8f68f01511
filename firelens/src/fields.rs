//! A log record's key-value pairs, as cheap to build as the decoder can
//! make them.
//!
//! A Forward frame carries hundreds of records, each a handful of string
//! keys and values. Building a `serde_json::Map` per record cost a B-tree
//! and two owned strings per field: most of the decoder's time went to
//! malloc and free. A [`Record`] instead keeps its text in one buffer that
//! every record of a frame shares (all the frame's strings, validated once,
//! copied once), and its fields, which point into it, are a run of one
//! vector that the frame's records share too: decoding a frame allocates
//! the same few buffers however many records it has. A record copies its
//! fields into a vector of its own only when it is changed. Only what a
//! filter or the joiners add later is owned by the field itself, and only
//! the rare value that is not a string (a number, a nested map) becomes
//! JSON.
//!
//! It keeps the meaning of the JSON object it replaced: one value per key,
//! the last of repeated keys wins, and iteration goes in key order (so
//! output is the same whatever order Docker's Go map wrote the keys in).

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

/// One record: fields sorted by key, keys unique.
#[derive(Clone, Default)]
pub struct Record {
    /// The text and fields of the frame the record came from, shared by
    /// its records; `Text::Span`s index the text.
    frame: Arc<FrameData>,
    fields: Fields,
    /// Bit `n` (`min(n, 63)`) is set when a key `n` bytes long may be
    /// present ([`length_bit`]). Most lookups are for keys a record does
    /// not have (the ECS keys in Docker's records, the partial-message
    /// keys); most of those are answered by this mask alone. Removing a
    /// key leaves its bit: the mask may say "maybe", never "no" wrongly.
    key_lengths: u64,
    /// Bumped by every change to the fields, so that a filter's caller can
    /// tell whether the filter changed the record ([`Record::revision`]).
    revision: u32,
}

/// What the records of one frame share: one text and one vector of
/// fields, each record a run of them. A record costs no allocation of its
/// own until something changes its fields.
#[derive(Debug, Default)]
struct FrameData {
    text: String,
    fields: Vec<Field>,
}

#[derive(Clone, Debug)]
enum Fields {
    /// `start..end` of the frame's fields: a record as decoded.
    Frame(u32, u32),
    /// The record's own fields, once a filter or joiner changed them (their
    /// spans still index the frame's text).
    Own(Vec<Field>),
}

impl Default for Fields {
    fn default() -> Fields {
        Fields::Own(Vec::new())
    }
}

#[inline]
fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

fn key_lengths(fields: &[Field]) -> u64 {
    fields
        .iter()
        .fold(0, |mask, f| mask | length_bit(f.key.len()))
}

/// A record's value as read: a string (nearly every value in a log record)
/// or any other JSON value. A string is always `Str`, never `Json`: every
/// way into a record puts strings in its text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldValue<'a> {
    Str(&'a str),
    Json(&'a Json),
}

impl<'a> FieldValue<'a> {
    /// The string, when the value is one.
    pub fn as_str(self) -> Option<&'a str> {
        match self {
            FieldValue::Str(s) => Some(s),
            FieldValue::Json(_) => None,
        }
    }

    /// The value as an owned JSON value.
    pub fn to_json(self) -> Json {
        match self {
            FieldValue::Str(s) => Json::String(s.to_string()),
            FieldValue::Json(j) => j.clone(),
        }
    }
}

#[derive(Clone, Debug)]
struct Field {
    key: Text,
    /// The key's first eight bytes ([`key_prefix`]): with its length, it
    /// finds and orders keys mostly without reading their text.
    prefix: u64,
    value: Slot,
}

/// A key's first eight bytes, big-endian and zero-padded. Keys compare as
/// their prefixes do, except when those are equal.
#[inline]
fn key_prefix(key: &[u8]) -> u64 {
    match key.first_chunk::<8>() {
        Some(head) => u64::from_be_bytes(*head),
        None => key
            .iter()
            .enumerate()
            .fold(0, |acc, (i, &b)| acc | u64::from(b) << (56 - 8 * i)),
    }
}

#[derive(Clone, Debug)]
enum Text {
    /// `start..end` of the shared text.
    Span(u32, u32),
    Owned(Box<str>),
    /// Text many records hold, such as a `record_modifier`'s keys and
    /// values: a reference is counted instead of a copy made per record.
    Shared(Arc<str>),
}

impl Text {
    /// Known without reading the text (a record's text was decoded on
    /// another core, and is cold until read).
    fn len(&self) -> usize {
        match self {
            Text::Span(start, end) => (end - start) as usize,
            Text::Owned(s) => s.len(),
            Text::Shared(s) => s.len(),
        }
    }
}

#[derive(Clone, Debug)]
enum Slot {
    Text(Text),
    Json(Box<Json>),
}

impl Record {
    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<FieldValue<'_>> {
        let i = self.position(key)?;
        Some(self.value_of(&self.fields()[i].value))
    }

    /// The value of `key` when it is a string.
    #[inline]
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(FieldValue::as_str)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.fields().len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields().is_empty()
    }

    /// The fields in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, FieldValue<'_>)> + '_ {
        self.fields()
            .iter()
            .map(|f| (self.text_of(&f.key), self.value_of(&f.value)))
    }

    /// Sets `key` to a string, replacing any value it had.
    pub fn insert(&mut self, key: &str, value: impl Into<Box<str>>) {
        self.set(key, Slot::Text(Text::Owned(value.into())));
    }

    /// [`Record::insert`] of a key and a value that many records get: the
    /// record holds references to them, not copies.
    pub fn insert_shared(&mut self, key: &Arc<str>, value: &Arc<str>) {
        self.set_with(key, Slot::Text(Text::Shared(value.clone())), || {
            Text::Shared(key.clone())
        });
    }

    /// [`Record::insert_shared`] when the record lacks `key`; a value it
    /// has stays. One lookup, where `contains_key` and then an insert
    /// take two.
    pub fn insert_shared_if_absent(&mut self, key: &Arc<str>, value: &Arc<str>) {
        if let Err(i) = self.find(key) {
            let value = Slot::Text(Text::Shared(value.clone()));
            self.insert_at(i, key, Text::Shared(key.clone()), value);
        }
    }

    /// Sets `key` to any JSON value, replacing any value it had.
    pub fn insert_json(&mut self, key: &str, value: Json) {
        let slot = match value {
            Json::String(s) => Slot::Text(Text::Owned(s.into())),
            other => Slot::Json(Box::new(other)),
        };
        self.set(key, slot);
    }

    /// Removes `key`; whether it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.find(key) {
            Ok(i) => {
                self.fields_mut().remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Keeps the fields whose key `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let (frame, before) = (&self.frame, self.len());
        let fields = own_fields(frame, &mut self.fields);
        fields.retain(|f| keep(text_in(&frame.text, &f.key)));
        if fields.len() != before {
            self.revision = self.revision.wrapping_add(1);
        }
    }

    /// Puts `other` in the record's place, as a change to it: a filter
    /// that builds a record anew replaces the one it was given this way.
    pub fn replace_with(&mut self, mut other: Record) {
        other.revision = self.revision.wrapping_add(1);
        *self = other;
    }

    /// A number that moves on whenever the record's fields change (it may
    /// wrap: compare it for equality only, before and after a filter).
    pub fn revision(&self) -> u32 {
        self.revision
    }

    /// The record's size as Fluent Bit holds it in a chunk, as msgpack:
    /// the event `[[time, {}], record]` (13 bytes around the record's map,
    /// with an EventTime), every length and number in its shortest form.
    /// Fluent Bit's plugin metrics count bytes this way.
    pub fn msgpack_event_size(&self) -> usize {
        const EVENT_HEAD: usize = 1 + 1 + 10 + 1;
        let fields = self.fields();
        EVENT_HEAD
            + collection_head(fields.len())
            + fields
                .iter()
                .map(|f| {
                    let value = match &f.value {
                        Slot::Text(t) => str_size(t.len()),
                        Slot::Json(j) => json_size(j),
                    };
                    str_size(f.key.len()) + value
                })
                .sum::<usize>()
    }

    /// [`Record::msgpack_event_size`] of a record that Fluent Bit's log
    /// event encoder built key by key (record_modifier, nest and aws
    /// filters do): it gives the map a 5-byte header whatever its size.
    pub fn msgpack_event_size_built(&self) -> usize {
        self.msgpack_event_size() - collection_head(self.len()) + 5
    }

    /// The record as a JSON object.
    pub fn to_json(&self) -> Map<String, Json> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_json()))
            .collect()
    }

    /// Bytes of text the record keeps alive: its frame's whole text (shared
    /// by the frame's records) until it is [detached](Record::detached).
    pub fn retained_text_len(&self) -> usize {
        self.frame.text.len()
    }

    /// The same record with a text of its own: what a joiner holds for a
    /// while should not keep the rest of its frame's text alive.
    pub fn detached(&self) -> Record {
        let shared = |t: &Text| match t {
            Text::Span(..) => t.len(),
            Text::Owned(_) | Text::Shared(_) => 0,
        };
        let mut text = String::with_capacity(
            self.fields()
                .iter()
                .map(|f| match &f.value {
                    Slot::Text(t) => shared(&f.key) + shared(t),
                    Slot::Json(_) => shared(&f.key),
                })
                .sum(),
        );
        let mut own = |t: &Text| match t {
            Text::Span(..) => {
                let start = text.len();
                text.push_str(self.text_of(t));
                Text::Span(start as u32, text.len() as u32)
            }
            Text::Owned(_) | Text::Shared(_) => t.clone(),
        };
        let fields: Vec<Field> = self
            .fields()
            .iter()
            .map(|f| Field {
                key: own(&f.key),
                prefix: f.prefix,
                value: match &f.value {
                    Slot::Text(t) => Slot::Text(own(t)),
                    Slot::Json(j) => Slot::Json(j.clone()),
                },
            })
            .collect();
        Record {
            fields: Fields::Frame(0, fields.len() as u32),
            frame: Arc::new(FrameData { text, fields }),
            key_lengths: self.key_lengths,
            revision: self.revision,
        }
    }

    /// About how many bytes of memory the record holds: its text and its
    /// fields (a frame's shared text is counted once over its records).
    pub fn estimated_bytes(&self) -> usize {
        let json = |j: &Json| serde_json::to_string(j).map_or(0, |s| s.len()) + 32;
        self.fields()
            .iter()
            .map(|f| {
                let value = match &f.value {
                    Slot::Text(t) => t.len(),
                    Slot::Json(j) => json(j),
                };
                std::mem::size_of::<Field>() + f.key.len() + value
            })
            .sum::<usize>()
            + std::mem::size_of::<Record>()
    }

    fn set(&mut self, key: &str, value: Slot) {
        self.set_with(key, value, || Text::Owned(key.into()));
    }

    /// Sets `key` to `value`; `key_text` makes the key's text when the
    /// record does not have the key yet.
    fn set_with(&mut self, key: &str, value: Slot, key_text: impl FnOnce() -> Text) {
        match self.find(key) {
            Ok(i) => self.fields_mut()[i].value = value,
            Err(i) => self.insert_at(i, key, key_text(), value),
        }
    }

    /// Adds the field `key` (whose text is `key_text`) at `i`, where
    /// [`Record::find`] said it goes.
    fn insert_at(&mut self, i: usize, key: &str, key_text: Text, value: Slot) {
        self.key_lengths |= length_bit(key.len());
        self.fields_mut().insert(
            i,
            Field {
                key: key_text,
                prefix: key_prefix(key.as_bytes()),
                value,
            },
        )
    }

    /// Where `key` is. A record has a handful of fields and most keys
    /// differ in length: a scan that reads a key's text only when its
    /// length matches touches less memory than a binary search does.
    #[inline]
    fn position(&self, key: &str) -> Option<usize> {
        if self.key_lengths & length_bit(key.len()) == 0 {
            return None;
        }
        let fields = self.fields();
        if fields.len() > 16 {
            return self.find(key).ok();
        }
        let prefix = key_prefix(key.as_bytes());
        // Equal lengths and prefixes are equal keys up to eight bytes.
        fields.iter().position(|f| {
            f.key.len() == key.len()
                && f.prefix == prefix
                && (key.len() <= 8 || self.text_of(&f.key) == key)
        })
    }

    /// Where `key` is, or where it would go.
    fn find(&self, key: &str) -> Result<usize, usize> {
        // In the order `sort_unique` keeps: prefixes first, as there.
        let prefix = key_prefix(key.as_bytes());
        self.fields().binary_search_by(|f| {
            f.prefix
                .cmp(&prefix)
                .then_with(|| self.text_of(&f.key).cmp(key))
        })
    }

    #[inline]
    fn fields(&self) -> &[Field] {
        fields_in(&self.frame, &self.fields)
    }

    /// The fields to change: the record's own from now on. Every caller
    /// changes them, so the record's revision moves on here.
    fn fields_mut(&mut self) -> &mut Vec<Field> {
        self.revision = self.revision.wrapping_add(1);
        own_fields(&self.frame, &mut self.fields)
    }

    #[inline]
    fn text_of<'a>(&'a self, text: &'a Text) -> &'a str {
        text_in(&self.frame.text, text)
    }

    #[inline]
    fn value_of<'a>(&'a self, slot: &'a Slot) -> FieldValue<'a> {
        match slot {
            Slot::Text(t) => FieldValue::Str(self.text_of(t)),
            Slot::Json(j) => FieldValue::Json(j),
        }
    }
}

#[inline]
fn fields_in<'a>(frame: &'a FrameData, fields: &'a Fields) -> &'a [Field] {
    match fields {
        Fields::Frame(start, end) => &frame.fields[*start as usize..*end as usize],
        Fields::Own(fields) => fields,
    }
}

/// `fields` as a vector of their own, copied out of `frame` the first
/// time: to change them. (Apart from `Record::fields_mut` so that a caller
/// may hold the frame's text meanwhile.)
fn own_fields<'a>(frame: &FrameData, fields: &'a mut Fields) -> &'a mut Vec<Field> {
    if let Fields::Frame(..) = fields {
        let run = fields_in(frame, fields);
        // Room for what is usually added next: drop-in mode's three ECS
        // keys go into every record, one insert at a time.
        let mut own = Vec::with_capacity(run.len() + 4);
        own.extend_from_slice(run);
        *fields = Fields::Own(own);
    }
    match fields {
        Fields::Own(own) => own,
        Fields::Frame(..) => unreachable!("made its own above"),
    }
}

#[inline]
fn text_in<'a>(shared: &'a str, text: &'a Text) -> &'a str {
    match text {
        Text::Span(start, end) => &shared[*start as usize..*end as usize],
        Text::Owned(s) => s,
        Text::Shared(s) => s,
    }
}

/// Bytes of a msgpack string of `len` bytes (fixstr, str8, str16, str32).
fn str_size(len: usize) -> usize {
    len + match len {
        0..32 => 1,
        32..256 => 2,
        256..65_536 => 3,
        _ => 5,
    }
}

/// Bytes of a msgpack array or map header for `len` items or pairs.
fn collection_head(len: usize) -> usize {
    match len {
        0..16 => 1,
        16..65_536 => 3,
        _ => 5,
    }
}

/// Bytes of `value` as msgpack, each part in its shortest encoding (a
/// float as float64, as Fluent Bit keeps floats).
fn json_size(value: &Json) -> usize {
    match value {
        Json::Null | Json::Bool(_) => 1,
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => match u {
                0..128 => 1,
                128..256 => 2,
                256..65_536 => 3,
                65_536..=0xffff_ffff => 5,
                _ => 9,
            },
            (None, Some(i)) => match i {
                -32..0 => 1,
                -128..-32 => 2,
                -32_768..-128 => 3,
                -2_147_483_648..-32_768 => 5,
                _ => 9,
            },
            (None, None) => 9,
        },
        Json::String(s) => str_size(s.len()),
        Json::Array(items) => {
            collection_head(items.len()) + items.iter().map(json_size).sum::<usize>()
        }
        Json::Object(map) => {
            collection_head(map.len())
                + map
                    .iter()
                    .map(|(k, v)| str_size(k.len()) + json_size(v))
                    .sum::<usize>()
        }
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl From<Map<String, Json>> for Record {
    fn from(map: Map<String, Json>) -> Record {
        let mut record = Record::default();
        for (key, value) in map {
            record.insert_json(&key, value);
        }
        record
    }
}

/// Where a [`RecordsBuilder`] was, to go back to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mark {
    text: usize,
    fields: usize,
    records: usize,
    json_bytes: usize,
}

/// Builds the records of one frame over one shared text. The bytes are
/// checked as UTF-8 once, all together, when the records are finished:
/// one pass over a frame instead of a call per string.
#[derive(Debug)]
pub(crate) struct RecordsBuilder {
    text: Vec<u8>,
    /// Every record's fields, one after another, each in the order the
    /// frame had them.
    fields: Vec<Field>,
    /// Where each record's fields start in `fields`.
    starts: Vec<u32>,
    /// About what the values that are not strings hold (`push_json`).
    json_bytes: usize,
}

impl RecordsBuilder {
    /// `capacity`: about how many bytes of text the frame has (its length
    /// is an upper bound).
    pub(crate) fn with_capacity(capacity: usize) -> RecordsBuilder {
        RecordsBuilder::with_room(capacity, 0)
    }

    /// Room for `text` bytes and `fields` fields at once: a frame shaped
    /// like the one before it (`codec::streaming`) then fills vectors that
    /// do not grow. Growing a frame's text by a quarter per 64 KiB read
    /// copied it about three times over.
    pub(crate) fn with_room(text: usize, fields: usize) -> RecordsBuilder {
        RecordsBuilder {
            text: Vec::with_capacity(text),
            fields: Vec::with_capacity(fields),
            starts: Vec::new(),
            json_bytes: 0,
        }
    }

    /// The memory the builder holds, as allocated.
    pub(crate) fn held_bytes(&self) -> usize {
        self.text.capacity()
            + self.fields.capacity() * FIELD_BYTES
            + self.starts.capacity() * std::mem::size_of::<u32>()
            + self.json_bytes
    }

    /// Bytes of text and fields so far.
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.text.len(), self.fields.len())
    }

    /// Room for `bytes` more of text: what a frame decoded as it arrives
    /// (`codec::streaming`) may add from the bytes buffered now. When it
    /// must grow, by a quarter at least: a frame trickling in small reads
    /// is then not copied once per read (quadratic in its size), and the
    /// text holds at most a quarter more than it needs (doubling would
    /// hold up to twice).
    pub(crate) fn reserve_text(&mut self, bytes: usize) {
        if self.text.capacity() - self.text.len() < bytes {
            self.text.reserve_exact(bytes.max(self.text.capacity() / 4));
        }
    }

    /// Where the builder is now, to go back to with
    /// [`RecordsBuilder::rollback`].
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            text: self.text.len(),
            fields: self.fields.len(),
            records: self.starts.len(),
            json_bytes: self.json_bytes,
        }
    }

    /// Forgets everything added since `mark` (an entry cut short by the
    /// end of the bytes read so far, or one that is not a log entry).
    pub(crate) fn rollback(&mut self, mark: Mark) {
        self.text.truncate(mark.text);
        self.fields.truncate(mark.fields);
        self.starts.truncate(mark.records);
        self.json_bytes = mark.json_bytes;
    }

    /// Starts the next record, of `fields` fields.
    pub(crate) fn start_record(&mut self, fields: usize) {
        // `ForwardCodec::new` keeps frames and payloads small enough that
        // their fields are counted in `u32`.
        self.starts.push(self.fields.len() as u32);
        let grown = self.fields_capacity_with(fields);
        self.fields.reserve_exact(grown - self.fields.len());
    }

    /// The fields' capacity once a record of `fields` fields is started:
    /// as it is when they fit, else doubled, or what the record needs.
    fn fields_capacity_with(&self, fields: usize) -> usize {
        let (needed, capacity) = (self.fields.len() + fields, self.fields.capacity());
        if needed > capacity {
            needed.max(capacity * 2)
        } else {
            capacity
        }
    }

    /// [`RecordsBuilder::held_bytes`] once a record of `fields` fields is
    /// started: to refuse a map whose header claims more fields than the
    /// frame's memory may hold, before room is made for them.
    pub(crate) fn held_bytes_with(&self, fields: usize) -> usize {
        let more = self.fields_capacity_with(fields) - self.fields.capacity();
        self.held_bytes() + more * FIELD_BYTES
    }

    /// How many records were started.
    pub(crate) fn records(&self) -> usize {
        self.starts.len()
    }

    /// Adds a field with a string value to the record started last; the
    /// bytes are taken as UTF-8, invalid sequences replaced by U+FFFD.
    pub(crate) fn push_str(&mut self, key: &[u8], value: &[u8]) {
        let key = self.append(key);
        let value = Slot::Text(self.append(value));
        // The prefix is taken once the text is final (`finish`).
        self.fields.push(Field {
            key,
            prefix: 0,
            value,
        });
    }

    /// Adds a field with another value to the record started last;
    /// `bytes`: about what the value holds, counted in
    /// [`RecordsBuilder::held_bytes`] from now on.
    pub(crate) fn push_json(&mut self, key: &[u8], value: Json, bytes: usize) {
        self.json_bytes += bytes;
        let key = self.append(key);
        let value = match value {
            Json::String(s) => Slot::Text(self.append(s.as_bytes())),
            other => Slot::Json(Box::new(other)),
        };
        // The prefix is taken once the text is final (`finish`).
        self.fields.push(Field {
            key,
            prefix: 0,
            value,
        });
    }

    /// The records, in the order they were started.
    pub(crate) fn finish(mut self) -> impl Iterator<Item = Record> {
        // Room reserved from an estimate and left unused would be held
        // (and counted against `limits.memory`) until the frame's last
        // record is shipped. jemalloc shrinks a large block in place.
        shrink_unused(&mut self.text);
        shrink_unused(&mut self.fields);
        let text = match String::from_utf8(self.text) {
            Ok(text) if every_span_on_char_boundaries(&text, &mut self.fields) => text,
            Ok(text) => replace_invalid(text.as_bytes(), &mut self.fields),
            Err(e) => replace_invalid(e.as_bytes(), &mut self.fields),
        };
        // Each record's run of fields, sorted; repeated keys leave unused
        // fields at its end.
        let ends = self.starts.iter().skip(1).copied();
        let runs: Vec<(u32, u32, u64)> = self
            .starts
            .iter()
            .zip(ends.chain([self.fields.len() as u32]))
            .map(|(&start, end)| {
                let fields = &mut self.fields[start as usize..end as usize];
                let kept = sort_unique(&text, fields);
                (start, start + kept as u32, key_lengths(&fields[..kept]))
            })
            .collect();
        let frame = Arc::new(FrameData {
            text,
            fields: self.fields,
        });
        runs.into_iter()
            .map(move |(start, end, key_lengths)| Record {
                frame: Arc::clone(&frame),
                fields: Fields::Frame(start, end),
                key_lengths,
                revision: 0,
            })
    }

    fn append(&mut self, bytes: &[u8]) -> Text {
        let start = self.text.len();
        self.text.extend_from_slice(bytes);
        // `ForwardCodec::new` keeps frames and payloads small enough that
        // their text, even with every byte replaced, fits `u32` offsets.
        Text::Span(start as u32, self.text.len() as u32)
    }
}

/// The memory one field takes in a record's run.
pub(crate) const FIELD_BYTES: usize = std::mem::size_of::<Field>();

/// Gives back `v`'s unused room when it is more than an eighth of its
/// length and more than 64 KiB: below that, a copy per frame would cost
/// more than the room (a Docker frame's text is reserved at the frame's
/// length, a little more than it needs).
fn shrink_unused<T>(v: &mut Vec<T>) {
    let unused = v.capacity() - v.len();
    if unused > v.len() / 8 && unused * std::mem::size_of::<T>() > 64 << 10 {
        v.shrink_to_fit();
    }
}

/// Every span of `fields`, keys and values.
fn spans(fields: &mut [Field]) -> impl Iterator<Item = &mut Text> {
    fields.iter_mut().flat_map(|f| {
        let value = match &mut f.value {
            Slot::Text(t) => Some(t),
            Slot::Json(_) => None,
        };
        std::iter::once(&mut f.key).chain(value)
    })
}

/// Whether every string on its own is valid: the whole text can be valid
/// while one string ends inside a character that the next one finishes.
fn every_span_on_char_boundaries(text: &str, fields: &mut [Field]) -> bool {
    spans(fields).all(|t| match t {
        Text::Span(start, end) => {
            text.is_char_boundary(*start as usize) && text.is_char_boundary(*end as usize)
        }
        Text::Owned(_) | Text::Shared(_) => true,
    })
}

/// The slow path, for a frame with invalid UTF-8: each string converted on
/// its own (U+FFFD for what is invalid) into a new text, spans moved.
fn replace_invalid(bytes: &[u8], fields: &mut [Field]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for span in spans(fields) {
        if let Text::Span(start, end) = span {
            let piece = String::from_utf8_lossy(&bytes[*start as usize..*end as usize]);
            let new_start = text.len();
            text.push_str(&piece);
            *span = Text::Span(new_start as u32, text.len() as u32);
        }
    }
    text
}

/// Sorts fields by key and keeps the last of each repeated key, as
/// inserting them one by one into a JSON object would: the kept fields are
/// the first ones, and their number is returned.
/// Also takes each key's prefix, now that the text is final.
fn sort_unique(text: &str, fields: &mut [Field]) -> usize {
    // `text_in` as bytes, without its char-boundary checks: this runs for
    // every field of every record (with `text_in`, 4,876 instead of 4,704
    // instructions per event in `profile_forward`).
    fn key_bytes<'a>(text: &'a [u8], f: &'a Field) -> &'a [u8] {
        match &f.key {
            Text::Span(start, end) => &text[*start as usize..*end as usize],
            Text::Owned(s) => s.as_bytes(),
            Text::Shared(s) => s.as_bytes(),
        }
    }
    let text = text.as_bytes();
    for f in fields.iter_mut() {
        f.prefix = key_prefix(key_bytes(text, f));
    }
    // Keys compare as their bytes do (as `str`s do): prefixes first, the
    // text only when those are equal.
    let order = |a: &Field, b: &Field| {
        a.prefix
            .cmp(&b.prefix)
            .then_with(|| key_bytes(text, a).cmp(key_bytes(text, b)))
    };
    // Stable, so repeated keys stay in arrival order; records are small,
    // and a sorted one costs one comparison per field.
    fields.sort_by(order);
    // The last of each run of equal keys is the one kept.
    if fields.is_empty() {
        return 0;
    }
    let mut kept = 0;
    for next in 1..fields.len() {
        if order(&fields[next], &fields[kept]).is_ne() {
            kept += 1;
        }
        fields.swap(kept, next);
    }
    kept + 1
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The records of one frame, each given as its keys and (byte) values.
    fn frame_of(records: &[&[(&str, &[u8])]]) -> Vec<Record> {
        let mut b = RecordsBuilder::with_capacity(64);
        for pairs in records {
            b.start_record(pairs.len());
            for (k, v) in *pairs {
                b.push_str(k.as_bytes(), v);
            }
        }
        b.finish().collect()
    }

    fn built(pairs: &[(&str, &str)]) -> Record {
        let mut b = RecordsBuilder::with_capacity(64);
        b.start_record(pairs.len());
        for (k, v) in pairs {
            b.push_str(k.as_bytes(), v.as_bytes());
        }
        b.finish().next().unwrap()
    }

    /// Sizes as Python's msgpack packs `[[ExtType(0, 8 bytes), {}], record]`,
    /// and as Fluent Bit v5.1.1 counted the first record's bytes (83 for a
    /// dummy input's record of these three keys).
    #[test]
    fn msgpack_event_sizes_are_fluent_bits() {
        let docker = built(&[
            ("log", "GET /a?token=s3cret HTTP"),
            ("source", "stdout"),
            ("container_name", "/ecs-app-1"),
        ]);
        assert_eq!(docker.msgpack_event_size(), 83);
        // With record_modifier's `ecs_cluster prod`, Fluent Bit counted 104.
        let mut modified = docker.clone();
        modified.insert("ecs_cluster", "prod");
        assert_eq!(modified.msgpack_event_size_built(), 104);
        let Json::Object(map) = json!({"a": 1, "b": -5, "c": 300, "d": 1.5, "e": null,
            "f": [1, 2], "g": {"h": "x"}, "i": -200, "j": 1_u64 << 40, "k": "x".repeat(40), "l": true})
        else {
            unreachable!()
        };
        assert_eq!(Record::from(map).msgpack_event_size(), 114);
        let sixteen: Vec<(String, &str)> = (0..16).map(|i| (format!("k{i:02}"), "v")).collect();
        let pairs: Vec<(&str, &str)> = sixteen.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(built(&pairs).msgpack_event_size(), 112);
    }

    /// A change to the fields moves the revision on; reading, and a
    /// retain or remove that removes nothing, do not.
    #[test]
    fn the_revision_moves_on_with_each_change() {
        let mut r = built(&[("log", "x"), ("source", "stdout")]);
        let first = r.revision();
        assert_eq!(r.get_str("log"), Some("x"));
        assert!(!r.remove("absent"));
        r.retain(|_| true);
        assert_eq!(r.revision(), first);
        r.insert("log", "y");
        let second = r.revision();
        assert_ne!(second, first);
        r.retain(|k| k == "log");
        assert_ne!(r.revision(), second);
        let third = r.revision();
        r.replace_with(Record::default());
        assert_ne!(r.revision(), third);
        assert!(r.is_empty());
    }

    /// Room reserved from an estimate and not used is not held for as long
    /// as the frame's records live, unless it is too little to matter.
    #[test]
    fn room_a_frame_did_not_use_is_given_back() {
        let build = |text, fields| {
            let mut b = RecordsBuilder::with_room(text, fields);
            b.start_record(1);
            b.push_str(b"log", b"a line");
            b.finish().next().unwrap()
        };
        let record = build(1 << 20, 10_000);
        assert_eq!(record.frame.text.capacity(), "loga line".len());
        assert_eq!(record.frame.fields.capacity(), 1);
        let record = build(1000, 10);
        assert_eq!(record.frame.text.capacity(), 1000);
        assert_eq!(record.frame.fields.capacity(), 10);
        assert_eq!(record.get_str("log"), Some("a line"));
    }

    /// Keys that share their first eight bytes, are prefixes of each
    /// other, or hold a NUL byte sort as `str`s do.
    #[test]
    fn keys_sort_as_strings_whatever_their_prefixes() {
        let keys = [
            "container_name",
            "source",
            "containe",
            "container_id",
            "a\u{0}",
            "a",
            "é",
            "",
            "containe\u{0}",
            "b",
            "a\u{0}\u{0}",
            "container_id_2",
        ];
        let pairs: Vec<(&str, &str)> = keys.iter().map(|k| (*k, "v")).collect();
        let record = built(&pairs);
        let got: Vec<&str> = record.iter().map(|(k, _)| k).collect();
        let mut want = keys.to_vec();
        want.sort();
        assert_eq!(got, want);
        // Found by length and prefix, and by text beyond eight bytes.
        for k in keys {
            assert_eq!(record.get_str(k), Some("v"), "{k:?}");
        }
        for missing in ["container_nam3", "containf", "a\u{1}", "c"] {
            assert_eq!(record.get(missing), None, "{missing:?}");
        }
    }

    /// Above 16 fields a key is found by binary search, in the same order.
    #[test]
    fn many_fields_are_found_by_binary_search() {
        let keys: Vec<String> = (0..20)
            .map(|i| format!("container_{}", (b'a' + i) as char))
            .chain(["log".into(), "a".into()])
            .collect();
        let pairs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), k.as_str())).collect();
        let mut record = built(&pairs);
        for k in &keys {
            assert_eq!(record.get_str(k), Some(k.as_str()));
        }
        assert_eq!(record.get("container_"), None);
        record.insert("container_b0", "new");
        assert_eq!(record.get_str("container_b0"), Some("new"));
        let got: Vec<&str> = record.iter().map(|(k, _)| k).collect();
        let mut want: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .chain(["container_b0"])
            .collect();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn fields_come_out_in_key_order_and_the_last_repeat_wins() {
        let r = built(&[("source", "stdout"), ("log", "a"), ("b", "1"), ("log", "z")]);
        let got: Vec<_> = r.iter().map(|(k, v)| (k, v.as_str().unwrap())).collect();
        assert_eq!(got, [("b", "1"), ("log", "z"), ("source", "stdout")]);
        assert_eq!(r.get_str("log"), Some("z"));
        assert_eq!(r.get("missing"), None);
        let r = built(&[
            ("a", "1"),
            ("a", "2"),
            ("b", "x"),
            ("a", "3"),
            ("b", "y"),
            ("c", "k"),
            ("c", "l"),
        ]);
        let got: Vec<_> = r.iter().map(|(k, v)| (k, v.as_str().unwrap())).collect();
        assert_eq!(got, [("a", "3"), ("b", "y"), ("c", "l")]);
        let r = built(&[("a", "1"), ("a", "2")]);
        let got: Vec<_> = r.iter().map(|(k, v)| (k, v.as_str().unwrap())).collect();
        assert_eq!(got, [("a", "2")]);
    }

    #[test]
    fn every_key_is_found_in_small_and_large_records() {
        for n in [1, 7, 16, 17, 40] {
            let pairs: Vec<(String, String)> =
                (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
            let borrowed: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let r = built(&borrowed);
            for (k, v) in &pairs {
                assert_eq!(r.get_str(k), Some(v.as_str()), "{k} of {n}");
            }
            assert_eq!(r.get("k"), None);
            assert!(!r.contains_key(&format!("k{n}")));
        }
    }

    /// A frame of two records: `log` "first", then `log` "second" and `n`.
    fn frame_of_two(n: Json) -> Vec<Record> {
        let mut b = RecordsBuilder::with_capacity(16);
        b.start_record(1);
        b.push_str(b"log", b"first");
        b.start_record(2);
        b.push_str(b"log", b"second");
        b.push_json(b"n", n, 0);
        b.finish().collect()
    }

    #[test]
    fn records_of_a_frame_share_one_text() {
        let records = frame_of_two(json!(7));
        assert!(Arc::ptr_eq(&records[0].frame, &records[1].frame));
        assert_eq!(
            records[0].to_json(),
            json!({"log": "first"}).as_object().unwrap().clone()
        );
        assert_eq!(
            records[1].to_json(),
            json!({"log": "second", "n": 7})
                .as_object()
                .unwrap()
                .clone()
        );
        assert_eq!(records[1].get("n"), Some(FieldValue::Json(&json!(7))));
        assert_eq!(records[1].get_str("n"), None);
    }

    #[test]
    fn invalid_utf8_is_replaced_string_by_string() {
        let r = &frame_of(&[&[
            ("log", b"caf\xc3\xa9 \xff!"),
            // Valid together, but each string ends or starts inside "é".
            ("a", b"x\xc3"),
            ("b", b"\xa9y"),
        ]])[0];
        assert_eq!(r.get_str("log"), Some("café \u{fffd}!"));
        assert_eq!(r.get_str("a"), Some("x\u{fffd}"));
        assert_eq!(r.get_str("b"), Some("\u{fffd}y"));
        let r = &frame_of(&[&[("a", b"x\xc3"), ("b", b"\xa9y")]])[0];
        assert_eq!(r.get_str("a"), Some("x\u{fffd}"));
        assert_eq!(r.get_str("b"), Some("\u{fffd}y"));
    }

    /// A record's edits are its own: the other records of its frame, and
    /// clones made before, keep their fields.
    #[test]
    fn editing_a_record_leaves_its_frame_alone() {
        let mut records = frame_of(&[
            &[("log", b"a"), ("log", b"b"), ("source", b"stdout")],
            &[("source", b"stderr"), ("log", b"c")],
        ]);
        let before = records[0].clone();
        records[0].insert("log", "edited");
        assert!(records[0].remove("source"));
        records[1].retain(|k| k == "log");
        let pairs = |r: &Record| -> Vec<(String, String)> {
            r.iter()
                .map(|(k, v)| (k.to_string(), v.as_str().unwrap().to_string()))
                .collect()
        };
        let owned = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(pairs(&records[0]), [owned("log", "edited")]);
        assert_eq!(pairs(&records[1]), [owned("log", "c")]);
        assert_eq!(
            pairs(&before),
            [owned("log", "b"), owned("source", "stdout")]
        );
        assert!(Arc::ptr_eq(&records[0].frame, &before.frame));
    }

    #[test]
    fn a_detached_record_has_its_own_text() {
        let records = frame_of_two(json!({"a": 1}));
        let mut second = records[1].detached();
        assert_eq!(second, records[1]);
        assert_eq!(second.frame.text, "logsecondn");
        assert_eq!(second.retained_text_len(), "logsecondn".len());
        assert_eq!(records[1].retained_text_len(), records[1].frame.text.len());
        assert!(!Arc::ptr_eq(&second.frame, &records[1].frame));
        second.insert("added", "x");
        let again = second.detached();
        assert_eq!(again, second);
        assert_eq!(again.frame.text, "logsecondn");
    }

    #[test]
    fn edits_keep_the_order_and_replace_values() {
        let mut r = built(&[("log", "a"), ("source", "stdout")]);
        r.insert("ecs_cluster", "c");
        r.insert("log", "b");
        r.insert_json("n", json!([1]));
        assert!(r.remove("source"));
        assert!(!r.remove("source"));
        assert_eq!(
            Json::Object(r.to_json()),
            json!({"ecs_cluster": "c", "log": "b", "n": [1]})
        );
        let keys: Vec<&str> = r.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["ecs_cluster", "log", "n"]);
        r.retain(|k| k != "n");
        assert_eq!(
            Json::Object(r.to_json()),
            json!({"ecs_cluster": "c", "log": "b"})
        );
    }

    /// Shared keys and values read, compare, detach and get replaced as
    /// owned ones do, and the records hold the same text, not copies.
    #[test]
    fn shared_text_is_read_as_owned_text_is() {
        let key: Arc<str> = "ecs_cluster".into();
        let value: Arc<str> = "prod".into();
        let mut records = frame_of(&[&[("log", b"a"), ("source", b"stdout")], &[("log", b"b")]]);
        for r in &mut records {
            r.insert_shared(&key, &value);
        }
        assert_eq!(Arc::strong_count(&key), 3);
        assert_eq!(Arc::strong_count(&value), 3);
        assert_eq!(
            records[0],
            built(&[("log", "a"), ("source", "stdout"), ("ecs_cluster", "prod")])
        );
        assert_eq!(records[1].get_str("ecs_cluster"), Some("prod"));
        let keys: Vec<&str> = records[0].iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["ecs_cluster", "log", "source"]);
        let detached = records[1].detached();
        assert_eq!(detached, records[1]);
        assert_eq!(detached.frame.text, "logb");
        records[1].insert("ecs_cluster", "other");
        assert_eq!(records[1].get_str("ecs_cluster"), Some("other"));
        // A value the record has stays.
        records[1].insert_shared_if_absent(&key, &value);
        assert_eq!(records[1].get_str("ecs_cluster"), Some("other"));
        let arn: Arc<str> = "ecs_task_arn".into();
        records[1].insert_shared_if_absent(&arn, &value);
        assert_eq!(records[1].get_str("ecs_task_arn"), Some("prod"));
        assert_eq!(Arc::strong_count(&value), 4);
        records[1].insert("ecs_task_arn", "x");
        assert_eq!(Arc::strong_count(&value), 3, "the detached copy holds one");
        drop(detached);
        assert_eq!(Arc::strong_count(&value), 2);
    }

    #[test]
    fn a_record_from_a_map_equals_the_same_record_decoded() {
        let map = json!({"log": "x", "source": "stderr"})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(
            Record::from(map),
            built(&[("source", "stderr"), ("log", "x")])
        );
        assert_ne!(Record::default(), built(&[("log", "x")]));
        assert_eq!(
            format!("{:?}", built(&[("log", "x")])),
            r#"{"log": Str("x")}"#
        );
    }

    proptest::proptest! {
        /// Lookups agree with a map after any edits: the key-length mask
        /// never hides a key (lengths 0 to past 63, which share a bit).
        #[test]
        fn lookups_agree_with_a_map_after_edits(
            built_keys in proptest::collection::vec(0usize..70, 0..12),
            edits in proptest::collection::vec((proptest::bool::ANY, 0usize..70), 0..20),
            probes in proptest::collection::vec(0usize..70, 0..20),
        ) {
            // A key of each length: `k` then `x`s (two lengths, one key).
            let key = |len: usize| if len == 0 { String::new() } else { format!("k{}", "x".repeat(len - 1)) };
            let pairs: Vec<(String, String)> =
                built_keys.iter().map(|&n| (key(n), format!("v{n}"))).collect();
            let borrowed: Vec<(&str, &str)> =
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut record = built(&borrowed);
            let mut model: std::collections::BTreeMap<String, String> = pairs.into_iter().collect();
            for (insert, n) in edits {
                if insert {
                    record.insert(&key(n), format!("e{n}"));
                    model.insert(key(n), format!("e{n}"));
                } else {
                    proptest::prop_assert_eq!(record.remove(&key(n)), model.remove(&key(n)).is_some());
                }
            }
            for n in probes.into_iter().chain(built_keys).chain(0..70) {
                proptest::prop_assert_eq!(record.get_str(&key(n)), model.get(&key(n)).map(String::as_str));
            }
        }
    }
}
