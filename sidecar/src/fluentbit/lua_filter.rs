//! `[FILTER] lua`, as `plugins/filter_lua` (v5.1.1) runs it: the function
//! `call` of the `script` (or the inline `code`) gets each record as
//! `f(tag, timestamp, record)` and returns `code, timestamp, record`:
//!
//! - `-1`: the record is dropped;
//! - `0`: it goes on as it was;
//! - `1`: it goes on as returned, with the returned time;
//! - `2`: as returned, with its own time.
//!
//! A returned array of records makes one record of each (an empty one
//! makes none). A script that fails on a record, or runs over 1 s on it,
//! leaves that record as it was, and is logged (Fluent Bit's
//! `protected_mode`, always on here; Fluent Bit lets a call run forever).
//!
//! Values cross as Fluent Bit's `flb_lua.c` converts them: a map becomes a
//! table, an array a table indexed from 1; a number with no fraction comes
//! back as an integer, and a table is an array when `table.maxn` finds
//! positive keys (or its keys are `1..n`), else a map; tables that came in
//! keep their kind. `type_int_key` and `type_array_key` force keys to
//! integers and arrays; `time_as_table` passes `{sec=, nsec=}`;
//! `enable_flb_null` passes JSON null as `flb_null` instead of dropping
//! the key. The language is Lua 5.1, which LuaJIT implements (its `bit`
//! and `ffi` modules are not there), with the `table`, `string`, `math`
//! and `os` libraries. What a script could write outside the records is
//! not there, so that nothing unredacted leaves Sluice: `print` does
//! nothing, and `io`, `os.execute`, `os.remove`, `os.rename`, `dofile` and
//! `loadfile` are missing.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mlua::{
    Function, HookTriggers, LightUserData, Lua, LuaOptions, MultiValue, StdLib, Table, Value,
    VmState,
};
use serde_json::{Map, Number, Value as Json};
use sluice_firelens::{FieldValue, Record};

use super::classic::Section;
use crate::config::layer::fluent_bool;

/// One lua filter: its own Lua state and function.
pub struct LuaFilter {
    lua: Lua,
    function: Function,
    pub call: String,
    time_as_table: bool,
    int_keys: Vec<String>,
    array_keys: Vec<String>,
    enable_null: bool,
    /// The metatables that mark a table made from a map or an array.
    map_kind: Table,
    array_kind: Table,
    /// Records the script failed on.
    failures: AtomicU64,
    /// When the call running now must have returned, in ms from
    /// [`clock_start`]; `u64::MAX` between calls.
    deadline_ms: Arc<AtomicU64>,
}

/// The most one call may take: a script that loops forever on a record
/// would otherwise stop every record behind it.
const CALL_LIMIT: Duration = Duration::from_secs(1);

fn clock_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn clock_ms() -> u64 {
    clock_start().elapsed().as_millis() as u64
}

impl std::fmt::Debug for LuaFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LuaFilter")
            .field("call", &self.call)
            .finish()
    }
}

/// What the script made of a record.
#[derive(Debug, PartialEq)]
pub enum LuaOutcome {
    Keep,
    Drop,
    /// The records that go on instead, and their new time, if any.
    Replace(Vec<Record>, Option<i64>),
}

impl LuaFilter {
    /// Reads the section and loads its script; `dir` is where a relative
    /// `script` path is looked for when it is not found as given (the
    /// configuration's directory, as Fluent Bit looks).
    pub fn from_section(section: &Section, dir: &Path) -> Result<LuaFilter, String> {
        let error = |message: String| format!("[FILTER] lua {message}");
        let flag = |key: &str, value: &str| {
            fluent_bool(value).ok_or_else(|| error(format!("{key} {value:?} is not true or false")))
        };
        let (mut script, mut code, mut call) = (None, None, None);
        let (mut time_as_table, mut enable_null) = (false, false);
        let (mut int_keys, mut array_keys) = (Vec::new(), Vec::new());
        let words = |v: &str| v.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        for (key, value) in &section.entries {
            match key.to_ascii_lowercase().as_str() {
                "name" | "match" | "match_regex" | "alias" => {}
                "script" => script = Some(value.clone()),
                "code" => code = Some(value.clone()),
                "call" => call = Some(value.clone()),
                "protected_mode" => {
                    flag(key, value)?;
                }
                "time_as_table" => time_as_table = flag(key, value)?,
                "enable_flb_null" => enable_null = flag(key, value)?,
                "type_int_key" => int_keys.extend(words(value)),
                "type_array_key" => array_keys.extend(words(value)),
                _ => {
                    return Err(error(format!(
                        "has no option {key}; it takes script, code, call, protected_mode, time_as_table, type_int_key, type_array_key, enable_flb_null"
                    )))
                }
            }
        }
        let call = call.ok_or_else(|| error("needs call, the function to run".into()))?;
        let (source, name) = match (script, code) {
            (Some(_), Some(_)) => return Err(error("takes script or code, not both".into())),
            (None, None) => return Err(error("needs script or code".into())),
            (None, Some(code)) => (code, "code".to_string()),
            (Some(script), None) => {
                let path = Path::new(&script);
                let path = if path.exists() || path.is_absolute() {
                    path.to_path_buf()
                } else {
                    dir.join(path)
                };
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    error(format!("script {}: cannot read it: {e}", path.display()))
                })?;
                (text, path.display().to_string())
            }
        };
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::OS,
            LuaOptions::default(),
        )
        .map_err(|e| error(e.to_string()))?;
        let lua_error = |e: mlua::Error| error(format!("{name}: {e}"));
        // Nothing a script writes may leave Sluice but the records it
        // returns, which are redacted: print, io and the functions of os
        // that reach outside are not there.
        lua.load(
            "print = function() end \
             dofile, loadfile = nil, nil \
             os.execute, os.exit, os.remove, os.rename, os.tmpname = nil, nil, nil, nil, nil",
        )
        .exec()
        .map_err(lua_error)?;
        if enable_null {
            lua.globals()
                .set("flb_null", LightUserData(std::ptr::null_mut()))
                .map_err(lua_error)?;
        }
        lua.load(&source)
            .set_name(&name)
            .exec()
            .map_err(lua_error)?;
        let function: Function = lua.globals().get(call.as_str()).map_err(|_| {
            error(format!(
                "call {call}: {name} defines no function of that name"
            ))
        })?;
        let deadline_ms = Arc::new(AtomicU64::new(u64::MAX));
        let deadline = deadline_ms.clone();
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(100_000),
            move |_, _| {
                if clock_ms() > deadline.load(Ordering::Relaxed) {
                    return Err(mlua::Error::runtime(format!(
                        "the call ran over {} s on one record",
                        CALL_LIMIT.as_secs()
                    )));
                }
                Ok(VmState::Continue)
            },
        );
        let map_kind = lua.create_table().map_err(lua_error)?;
        let array_kind = lua.create_table().map_err(lua_error)?;
        Ok(LuaFilter {
            lua,
            function,
            call,
            time_as_table,
            int_keys,
            array_keys,
            enable_null,
            map_kind,
            array_kind,
            failures: AtomicU64::new(0),
            deadline_ms,
        })
    }

    /// Runs the function on one record.
    pub fn apply(&self, tag: &str, record: &Record, time_ns: i64) -> LuaOutcome {
        match self.run(tag, record, time_ns) {
            Ok(outcome) => outcome,
            Err(e) => {
                // The first failure, then one in 10,000: a script that fails
                // on every record must not flood the router's own log.
                let n = self.failures.fetch_add(1, Ordering::Relaxed);
                if n.is_multiple_of(10_000) {
                    tracing::warn!(call = %self.call, failures = n + 1, error = %e, "[FILTER] lua: the script failed; the record goes on as it was");
                }
                LuaOutcome::Keep
            }
        }
    }

    fn run(&self, tag: &str, record: &Record, time_ns: i64) -> Result<LuaOutcome, String> {
        let table = self.record_table(record).map_err(|e| e.to_string())?;
        let time = if self.time_as_table {
            let t = self.lua.create_table().map_err(|e| e.to_string())?;
            t.set("sec", time_ns.div_euclid(1_000_000_000))
                .and_then(|()| t.set("nsec", time_ns.rem_euclid(1_000_000_000)))
                .map_err(|e| e.to_string())?;
            Value::Table(t)
        } else {
            Value::Number(time_ns as f64 / 1e9)
        };
        self.deadline_ms.store(
            clock_ms() + CALL_LIMIT.as_millis() as u64,
            Ordering::Relaxed,
        );
        let returned: Result<MultiValue, _> = self.function.call((tag, time, table));
        self.deadline_ms.store(u64::MAX, Ordering::Relaxed);
        let returned = returned.map_err(|e| e.to_string())?;
        let mut returned = returned.into_iter();
        let code = match returned.next() {
            Some(Value::Integer(i)) => i,
            Some(Value::Number(n)) => n as i64,
            _ => 0,
        };
        let new_time = returned.next().unwrap_or(Value::Nil);
        let new_record = returned.next().unwrap_or(Value::Nil);
        let time_ns = match code {
            -1 => return Ok(LuaOutcome::Drop),
            1 => Some(self.time_of(&new_time)?),
            2 => None,
            _ => return Ok(LuaOutcome::Keep),
        };
        let records = match &new_record {
            Value::Table(t) if self.is_array(t, "") => {
                let mut records = Vec::new();
                for i in 1..=self.array_length(t) {
                    match t.raw_get::<Value>(i).map_err(|e| e.to_string())? {
                        Value::Table(each) if !self.is_array(&each, "") => {
                            records.push(self.to_record(&each)?)
                        }
                        _ => {
                            return Err(
                                "an array returned holds something that is not a record".into()
                            )
                        }
                    }
                }
                records
            }
            Value::Table(t) => vec![self.to_record(t)?],
            _ => return Err("the record returned is not a table".into()),
        };
        Ok(LuaOutcome::Replace(records, time_ns))
    }

    /// The time returned with code 1.
    fn time_of(&self, value: &Value) -> Result<i64, String> {
        let number = |v: &Value| match v {
            Value::Integer(i) => Some(*i as f64),
            Value::Number(n) => Some(*n),
            _ => None,
        };
        if self.time_as_table {
            let Value::Table(t) = value else {
                return Err("the time returned is not a table".into());
            };
            let sec = number(&t.raw_get("sec").unwrap_or(Value::Nil)).unwrap_or(0.0) as i64;
            let nsec = number(&t.raw_get("nsec").unwrap_or(Value::Nil)).unwrap_or(0.0) as i64;
            return Ok(sec.saturating_mul(1_000_000_000).saturating_add(nsec));
        }
        let seconds = number(value).ok_or("the time returned is not a number")?;
        Ok((seconds * 1e9).round() as i64)
    }

    fn record_table(&self, record: &Record) -> mlua::Result<Table> {
        let table = self.lua.create_table()?;
        for (key, value) in record.iter() {
            let value = match value {
                FieldValue::Str(s) => Value::String(self.lua.create_string(s)?),
                FieldValue::Json(json) => self.to_lua(json)?,
            };
            table.raw_set(key, value)?;
        }
        table.set_metatable(Some(self.map_kind.clone()));
        Ok(table)
    }

    /// `flb_lua_pushmsgpack`: a JSON value as Lua sees it.
    fn to_lua(&self, json: &Json) -> mlua::Result<Value> {
        Ok(match json {
            Json::Null if self.enable_null => {
                Value::LightUserData(LightUserData(std::ptr::null_mut()))
            }
            Json::Null => Value::Nil,
            Json::Bool(b) => Value::Boolean(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Value::Integer(i),
                None => Value::Number(n.as_f64().unwrap_or(0.0)),
            },
            Json::String(s) => Value::String(self.lua.create_string(s)?),
            Json::Array(items) => {
                let t = self.lua.create_table()?;
                for (i, item) in items.iter().enumerate() {
                    t.raw_set(i + 1, self.to_lua(item)?)?;
                }
                t.set_metatable(Some(self.array_kind.clone()));
                Value::Table(t)
            }
            Json::Object(map) => {
                let t = self.lua.create_table()?;
                for (k, v) in map {
                    t.raw_set(k.as_str(), self.to_lua(v)?)?;
                }
                t.set_metatable(Some(self.map_kind.clone()));
                Value::Table(t)
            }
        })
    }

    /// Whether `flb_lua_tomsgpack` packs the table as an array: by the
    /// kind it came in as, a `type_array_key`, else by its keys.
    fn is_array(&self, t: &Table, key: &str) -> bool {
        if let Some(mt) = t.metatable() {
            if mt.to_pointer() == self.array_kind.to_pointer() {
                return true;
            }
            if mt.to_pointer() == self.map_kind.to_pointer() {
                return false;
            }
        }
        self.array_keys.iter().any(|k| k == key) || self.array_length(t) > 0
    }

    /// `flb_lua_arraylength`: `table.maxn` when it is a positive whole
    /// number; else `n` when the keys are exactly `1..n`; else 0.
    fn array_length(&self, t: &Table) -> usize {
        let mut maxn = 0.0f64;
        let (mut count, mut max, mut only_positive) = (0usize, 0usize, true);
        for (key, _) in t.clone().pairs::<Value, Value>().flatten() {
            let n = match key {
                Value::Integer(i) => i as f64,
                Value::Number(n) => n,
                _ => {
                    only_positive = false;
                    continue;
                }
            };
            maxn = maxn.max(n);
            if n >= 1.0 {
                count += 1;
                max = max.max(n as usize);
            } else {
                only_positive = false;
            }
        }
        if maxn >= 1.0 && maxn.fract() == 0.0 {
            return maxn as usize;
        }
        if only_positive && max == count {
            max
        } else {
            0
        }
    }

    fn to_record(&self, t: &Table) -> Result<Record, String> {
        let mut record = Record::default();
        for pair in t.clone().pairs::<Value, Value>() {
            let (key, value) = pair.map_err(|e| e.to_string())?;
            let Some(key) = key_text(&key) else { continue };
            let Some(json) = self.to_json(&value, &key) else {
                continue;
            };
            match json {
                Json::String(s) => record.insert(&key, s.as_str()),
                other => record.insert_json(&key, other),
            }
        }
        Ok(record)
    }

    /// `flb_lua_tomsgpack`: a Lua value as JSON; `None` for what cannot be
    /// packed (functions, threads, userdata), which leaves its key out.
    fn to_json(&self, value: &Value, key: &str) -> Option<Json> {
        if self.int_keys.iter().any(|k| k == key) {
            return Some(Json::from(lua_integer(value)));
        }
        Some(match value {
            Value::Nil => Json::Null,
            Value::LightUserData(u) if u.0.is_null() => Json::Null,
            Value::Boolean(b) => Json::Bool(*b),
            Value::Integer(i) => Json::from(*i),
            Value::Number(n) => Number::from_f64(*n).map_or(Json::Null, Json::Number),
            Value::String(s) => Json::String(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
            Value::Table(t) if self.is_array(t, key) => {
                let items = (1..=self.array_length(t))
                    .map(|i| {
                        let v = t.raw_get::<Value>(i).unwrap_or(Value::Nil);
                        self.to_json(&v, "").unwrap_or(Json::Null)
                    })
                    .collect();
                Json::Array(items)
            }
            Value::Table(t) => {
                let mut map = Map::new();
                for (k, v) in t.clone().pairs::<Value, Value>().flatten() {
                    if let (Some(k), Some(v)) = (key_text(&k), self.to_json(&v, "")) {
                        map.insert(k, v);
                    }
                }
                Json::Object(map)
            }
            _ => return None,
        })
    }
}

/// A map key as text: a string, or a number written out.
fn key_text(key: &Value) -> Option<String> {
    match key {
        Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Lua's `tointeger` of a `type_int_key` value: a number truncated, a
/// string that reads as one, else 0.
fn lua_integer(value: &Value) -> i64 {
    match value {
        Value::Integer(i) => *i,
        Value::Number(n) => *n as i64,
        Value::String(s) => s
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .map_or(0, |n| n as i64),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fluentbit::classic::SectionKind;
    use crate::fluentbit::tests::record;
    use serde_json::json;

    fn filter(entries: &[(&str, &str)]) -> Result<LuaFilter, String> {
        let head = [("Name", "lua"), ("Match", "*")];
        let section =
            crate::fluentbit::tests::section(SectionKind::Filter, "f.conf:1", &head, entries);
        LuaFilter::from_section(&section, Path::new("/nonexistent"))
    }

    fn code(source: &str) -> LuaFilter {
        filter(&[("code", source), ("call", "cb")]).unwrap()
    }

    fn replaced(outcome: LuaOutcome) -> (Vec<Json>, Option<i64>) {
        match outcome {
            LuaOutcome::Replace(records, time) => (
                records.iter().map(|r| Json::Object(r.to_json())).collect(),
                time,
            ),
            other => panic!("{other:?}"),
        }
    }

    /// The examples of Fluent Bit's documentation for the filter.
    #[test]
    fn codes_as_fluent_bit_reads_them() {
        let add = code(
            r#"function cb(tag, timestamp, record)
                   new_record = record
                   new_record["tag"] = tag
                   return 2, timestamp, new_record
               end"#,
        );
        let r = record(r#"{"log":"x","n":1,"nested":{"a":[1,2.5,"s",true]}}"#);
        assert_eq!(
            replaced(add.apply("app", &r, 7_000_000_000)),
            (
                vec![
                    json!({"log": "x", "n": 1, "nested": {"a": [1, 2.5, "s", true]}, "tag": "app"})
                ],
                None
            )
        );
        let drop = code("function cb(t, ts, r) if r.log == 'noise' then return -1, ts, r end return 0, ts, r end");
        assert_eq!(
            drop.apply("a", &record(r#"{"log":"noise"}"#), 0),
            LuaOutcome::Drop
        );
        assert_eq!(
            drop.apply("a", &record(r#"{"log":"x"}"#), 0),
            LuaOutcome::Keep
        );
        let retime = code("function cb(t, ts, r) return 1, ts + 1.5, r end");
        assert_eq!(
            replaced(retime.apply("a", &record(r#"{"log":"x"}"#), 2_000_000_000)).1,
            Some(3_500_000_000)
        );
        // An array of records makes one record of each.
        let split = code(
            r#"function cb(t, ts, r)
                   return 2, ts, {{part = 1, log = r.log}, {part = 2}}
               end"#,
        );
        assert_eq!(
            replaced(split.apply("a", &record(r#"{"log":"x"}"#), 0)).0,
            [json!({"part": 1, "log": "x"}), json!({"part": 2})]
        );
        assert_eq!(
            replaced(code("function cb(t, ts, r) return 1, ts, {} end").apply(
                "a",
                &record("{}"),
                5
            )),
            (vec![json!({})], Some(5))
        );
    }

    #[test]
    fn values_cross_as_flb_lua_converts_them() {
        let f = filter(&[
            (
                "code",
                r#"function cb(t, ts, r)
                       r.half = 10 / 4
                       r.whole = 10 / 2
                       r.list = {"a", "b"}
                       r.sparse = {[1] = "a", [3] = "c"}
                       r.empty_in = r.empty
                       r.fresh_empty = {}
                       r.count = "42"
                       r.fn = function() end
                       r.gone = nil
                       return 2, ts, r
                   end"#,
            ),
            ("call", "cb"),
            ("type_int_key", "count"),
            ("type_array_key", "fresh_empty"),
        ])
        .unwrap();
        let r = record(r#"{"empty":[],"obj":{},"gone":1}"#);
        assert_eq!(
            replaced(f.apply("a", &r, 0)).0,
            [json!({
                "half": 2.5,
                "whole": 5,
                "list": ["a", "b"],
                "sparse": ["a", null, "c"],
                "empty": [],
                "empty_in": [],
                "fresh_empty": [],
                "obj": {},
                "count": 42,
            })]
        );
    }

    #[test]
    fn null_time_tables_and_failures() {
        let null = filter(&[
            (
                "code",
                "function cb(t, ts, r) r.was_null = (r.n == flb_null) return 2, ts, r end",
            ),
            ("call", "cb"),
            ("enable_flb_null", "true"),
        ])
        .unwrap();
        assert_eq!(
            replaced(null.apply("a", &record(r#"{"n":null}"#), 0)).0,
            [json!({"n": null, "was_null": true})]
        );
        let table = filter(&[
            (
                "code",
                "function cb(t, ts, r) ts.sec = ts.sec + 1 return 1, ts, r end",
            ),
            ("call", "cb"),
            ("time_as_table", "on"),
        ])
        .unwrap();
        assert_eq!(
            replaced(table.apply("a", &record("{}"), 2_000_000_123)).1,
            Some(3_000_000_123)
        );
        // print says nothing, io is not there; os.time is.
        let quiet = code("function cb(t, ts, r) print(r.log) r.io = (io == nil) r.t = type(os.time()) return 2, ts, r end");
        assert_eq!(
            replaced(quiet.apply("a", &record(r#"{"log":"secret"}"#), 0)).0,
            [json!({"log": "secret", "io": true, "t": "number"})]
        );
        let failing = code("function cb(t, ts, r) error('boom') end");
        // A call that would never end is stopped, and the filter works on.
        let forever = code("function cb(t, ts, r) if r.log == 'loop' then while true do end end return 2, ts, {ok = true} end");
        assert_eq!(
            forever.apply("a", &record(r#"{"log":"loop"}"#), 0),
            LuaOutcome::Keep
        );
        assert_eq!(
            replaced(forever.apply("a", &record(r#"{"log":"x"}"#), 0)).0,
            [json!({"ok": true})]
        );
        assert_eq!(
            failing.apply("a", &record(r#"{"log":"x"}"#), 0),
            LuaOutcome::Keep
        );
        let wrong = code("function cb(t, ts, r) return 1, ts, 'not a table' end");
        assert_eq!(wrong.apply("a", &record("{}"), 0), LuaOutcome::Keep);
    }

    #[test]
    fn sections_are_checked_at_start() {
        for (entries, error) in [
            (vec![("code", "x = 1")], "[FILTER] lua needs call, the function to run"),
            (vec![("call", "cb")], "[FILTER] lua needs script or code"),
            (vec![("code", "x = 1"), ("call", "cb")], "[FILTER] lua call cb: code defines no function of that name"),
            (vec![("script", "/nonexistent/x.lua"), ("call", "cb")], "[FILTER] lua script /nonexistent/x.lua: cannot read it: No such file or directory (os error 2)"),
            (vec![("code", "x ="), ("call", "cb")], "[FILTER] lua code: syntax error: [string \"code\"]:1: unexpected symbol near '<eof>'"),
            (vec![("code", "x = 1"), ("call", "cb"), ("time_as_table", "maybe")], "[FILTER] lua time_as_table \"maybe\" is not true or false"),
            (vec![("code", "x = 1"), ("call", "cb"), ("workers", "2")], "[FILTER] lua has no option workers; it takes script, code, call, protected_mode, time_as_table, type_int_key, type_array_key, enable_flb_null"),
        ] {
            assert_eq!(filter(&entries).unwrap_err(), error, "{entries:?}");
        }
    }
}
