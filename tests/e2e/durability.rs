//! The fault matrix: each case sends a known set of events through
//! `sluice run` to moto (through the fault proxy), breaks something, and
//! then counts what CloudWatch holds, by content: every acked event must be
//! there, and duplicates are reported (and only allowed where
//! at-least-once allows them: after a kill -9, the batches in flight).
//!
//! Cases covered elsewhere: throttling, 500s and dropped connections on
//! 100,000 events, and a log group deleted while running (cloudwatch.rs);
//! malformed input of every class next to a good client (run.rs).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::cloudwatch::{cloudwatch_env, event_id, log_lines_with, send_bulk, start};
use crate::proxy::{switchable, Fault, FaultProxy, DOWN, HANG, PASS, STORM};
use crate::support::{
    client_with, free_port, scrape, wait_for, CloudWatchDump, Moto, Sidecar, TempPath,
};

/// A fresh directory for one test's spool, removed when dropped.
fn spool_dir(name: &str) -> TempPath {
    TempPath::unique_dir(&format!("spool-{name}"))
}

/// Segment files in a spool directory.
fn segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("spool dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("name"))
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

fn spooled_env(endpoint: &str, dir: &Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let dir = dir.display().to_string();
    let mut all = vec![("SLUICE_SPOOL_DIR", dir.as_str())];
    all.extend_from_slice(extra);
    cloudwatch_env(endpoint, &all)
}

/// How many times each `id-N` arrived (other events aside), and how many
/// ids arrived more than once.
fn counted(dump: &CloudWatchDump) -> (BTreeMap<usize, usize>, usize) {
    let mut counts = BTreeMap::new();
    for e in dump.events.iter().filter(|e| e.message.contains("id-")) {
        *counts.entry(event_id(&e.message)).or_default() += 1;
    }
    let duplicates = counts.values().filter(|n| **n > 1).count();
    (counts, duplicates)
}

/// Waits (up to 60 s) until moto holds every id below `n`.
///
/// Only waits: arrivals are counted from a dump read after the sidecar has
/// stopped. moto's `GetLogEvents` tokens are positions in the stream sorted
/// by time, which shift while older (replayed) events are stored, so a dump
/// read meanwhile can list events twice.
fn wait_for_ids(moto: &Moto, n: usize) {
    moto.wait_for_dump(&format!("CloudWatch never held all {n} events"), |dump| {
        let (counts, _) = counted(dump);
        (0..n).all(|i| counts.contains_key(&i))
    });
}

fn metric(sidecar: &Sidecar, name: &str) -> f64 {
    scrape(&sidecar.admin).1.get(name).copied().unwrap_or(-1.0)
}

#[test]
fn acked_events_survive_kill_9_and_a_torn_segment_with_the_spool() {
    let moto = Moto::start();
    let (proxy, mode) = switchable(moto.addr, None);
    let dir = spool_dir("kill9");
    // CloudWatch answers 500 to everything: nothing can be delivered.
    mode.store(DOWN, Ordering::Relaxed);
    let first = start(&spooled_env(&proxy.endpoint(), &dir, &[]));
    // Acked on both listeners: 2,000 over TCP, 1,000 over the unix socket.
    send_bulk(&first, 0, 2000);
    let out = client_with("bulk", &first.unix_address(), &["1000", "2000"]);
    assert_eq!(out, [r#"{"acks": 2}"#]);
    // And a line longer than an event may be: spooled as two parts.
    let out = client_with("big", &first.tcp, &["1500000"]);
    assert_eq!(out, [r#"{"ack": {"ack": "big"}}"#]);
    first.kill();
    let left = segments(&dir);
    assert_eq!(left.len(), 1, "{left:?}");
    // A torn write after the last record: a length no record can have.
    let path = dir.join(&left[0]);
    let mut bytes = std::fs::read(&path).expect("segment");
    bytes.extend_from_slice(&[0x5a; 100]);
    std::fs::write(&path, &bytes).expect("segment");

    mode.store(PASS, Ordering::Relaxed);
    let second = start(&spooled_env(&proxy.endpoint(), &dir, &[]));
    wait_for_ids(&moto, 3000);
    assert_eq!(
        metric(&second, "sluice_spool_replayed_events_total"),
        3002.0
    );
    assert_eq!(metric(&second, "sluice_spool_damaged_segments_total"), 1.0);
    assert_eq!(metric(&second, "sluice_spool_truncated_bytes_total"), 100.0);
    let logs = second.logs.clone();
    let (status, _) = second.stop();
    assert!(status.success(), "{status:?}");
    // Stopped cleanly: everything is there.
    let dump = moto.dump();
    // Nothing was delivered before the kill: nothing may arrive twice.
    let (counts, duplicates) = counted(&dump);
    assert_eq!(duplicates, 0);
    assert_eq!(counts.len(), 3000);
    let logs = logs.lock().expect("lock").clone();
    let damaged = log_lines_with(
        &logs,
        "a spool segment is damaged (a torn write?); keeping what is before the damage",
    );
    assert_eq!(damaged.len(), 1, "{logs:?}");
    assert_eq!(damaged[0]["fields"]["cut_bytes"], 100);
    assert_eq!(damaged[0]["fields"]["events_kept"], 3002);
    let mut parts: Vec<(&str, usize)> = dump
        .events
        .iter()
        .filter(|e| !e.message.contains("id-"))
        .map(|e| (&e.message[..22], e.message.len()))
        .collect();
    parts.sort();
    assert_eq!(
        parts.iter().map(|(head, _)| *head).collect::<Vec<_>>(),
        ["[sluice part 1/2] big ", "[sluice part 2/2] xxxx"]
    );
    // 1,500,000 bytes and two 18-byte markers.
    assert_eq!(parts.iter().map(|(_, len)| len).sum::<usize>(), 1_500_036);
    // Delivered and stopped cleanly: the spool is empty.
    assert_eq!(segments(&dir), Vec::<String>::new());
}

/// Runs `bulk_until_closed` on a thread; its result is the number of
/// events acked (ids 0..acked).
fn load_until_closed(address: &str) -> std::thread::JoinHandle<usize> {
    let address = address.to_string();
    std::thread::spawn(move || {
        let out = client_with("bulk_until_closed", &address, &["1000000", "100"]);
        let v: Json = serde_json::from_str(&out[0]).expect("JSON");
        v["acked"].as_u64().expect("acked") as usize
    })
}

#[test]
fn kill_9_in_the_middle_of_a_load_then_restart_loses_no_acked_event() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr, Box::new(|_, _| Fault::Pass));
    let dir = spool_dir("midload");
    let env = spooled_env(&proxy.endpoint(), &dir, &[]);
    let first = start(&env);
    let load = load_until_closed(&first.tcp);
    // Kill while events are both arriving and being delivered.
    wait_for(
        "no delivery under load",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || metric(&first, "sluice_cloudwatch_events_total") >= 3000.0,
    );
    first.kill();
    let acked = load.join().expect("client");
    assert!(acked >= 3000, "{acked}");
    let second = start(&env);
    wait_for_ids(&moto, acked);
    let (status, _) = second.stop();
    assert!(status.success(), "{status:?}");
    let (counts, duplicates) = counted(&moto.dump());
    // Unacked events (sent after the last ack) may have arrived too.
    let extra = counts.keys().filter(|i| **i >= acked).count();
    eprintln!(
        "kill -9 mid-load: {acked} events acked, all delivered; {duplicates} delivered twice; {extra} unacked delivered"
    );
    // At-least-once: only batches in flight at the kill may be sent twice
    // (at most 8 requests of at most 10,000 events).
    assert!(duplicates <= 8 * 10_000, "{duplicates}");
    assert!(counts.values().all(|n| *n <= 2), "an event arrived 3 times");
    assert_eq!(segments(&dir), Vec::<String>::new());
}

#[test]
fn sigterm_in_the_middle_of_a_load_delivers_every_acked_event() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr, Box::new(|_, _| Fault::Pass));
    let sidecar = start(&cloudwatch_env(&proxy.endpoint(), &[]));
    let load = load_until_closed(&sidecar.tcp);
    wait_for(
        "no input under load",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || metric(&sidecar, "sluice_forward_events_total") >= 3000.0,
    );
    let (status, _) = sidecar.stop();
    assert!(status.success(), "{status:?}");
    let acked = load.join().expect("client");
    assert!(acked >= 3000, "{acked}");
    // Everything is there as soon as the sidecar has exited.
    let (counts, duplicates) = counted(&moto.dump());
    assert!(
        (0..acked).all(|i| counts.contains_key(&i)),
        "acked events missing"
    );
    assert_eq!(duplicates, 0);
}

#[test]
fn cloudwatch_refusing_connections_then_timing_out_for_60_s_loses_nothing() {
    let moto = Moto::start();
    // The endpoint the sidecar is given has no listener yet: refused.
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let dir = spool_dir("unreachable");
    let sidecar = start(&spooled_env(&endpoint, &dir, &[]));
    let started = Instant::now();
    send_bulk(&sidecar, 0, 2000);
    std::thread::sleep(Duration::from_secs(30).saturating_sub(started.elapsed()));
    // Then it accepts connections and never answers.
    let (proxy, mode) = switchable(
        moto.addr,
        Some(format!("127.0.0.1:{port}").parse().expect("addr")),
    );
    mode.store(HANG, Ordering::Relaxed);
    send_bulk(&sidecar, 2000, 2000);
    std::thread::sleep(Duration::from_secs(60).saturating_sub(started.elapsed()));
    assert_eq!(metric(&sidecar, "sluice_cloudwatch_events_total"), 0.0);
    assert!(metric(&sidecar, "sluice_cloudwatch_retries_total") >= 5.0);
    // Back.
    mode.store(PASS, Ordering::Relaxed);
    wait_for_ids(&moto, 4000);
    let (status, _) = sidecar.stop();
    assert!(status.success(), "{status:?}");
    let (counts, duplicates) = counted(&moto.dump());
    // The hung requests never reached moto: nothing can be there twice.
    assert_eq!((counts.len(), duplicates), (4000, 0));
    let hung = proxy
        .recorded()
        .iter()
        .filter(|r| r.fault == Fault::Hang)
        .count();
    assert!(hung >= 1, "no request hung");
}

#[test]
fn a_30_s_throttling_storm_loses_nothing() {
    let moto = Moto::start();
    let (proxy, mode) = switchable(moto.addr, None);
    mode.store(STORM, Ordering::Relaxed);
    let sidecar = start(&cloudwatch_env(&proxy.endpoint(), &[]));
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(30) {
        send_bulk(&sidecar, sent, 1000);
        sent += 1000;
        std::thread::sleep(Duration::from_millis(500));
    }
    mode.store(PASS, Ordering::Relaxed);
    wait_for_ids(&moto, sent);
    let (status, _) = sidecar.stop();
    assert!(status.success(), "{status:?}");
    let recorded = proxy.recorded();
    let throttled = recorded
        .iter()
        .filter(|r| r.fault == Fault::Throttle)
        .count();
    let passed_in_storm = recorded
        .iter()
        .filter(|r| r.operation == "PutLogEvents" && r.fault == Fault::Pass)
        .count();
    eprintln!(
        "throttling storm: {sent} events, {throttled} requests throttled, {passed_in_storm} passed"
    );
    assert!(throttled >= 20, "{throttled}");
    // Throttled requests never reached moto: nothing twice.
    let (counts, duplicates) = counted(&moto.dump());
    assert_eq!((counts.len(), duplicates), (sent, 0));
}

#[test]
fn a_full_disk_under_the_spool_holds_acks_until_space_is_freed() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr, Box::new(|_, _| Fault::Pass));
    // A 1 MiB tmpfs, in a mount namespace of the sidecar's own, almost
    // filled by another file; the spool lives on it. The wrapper removes
    // the filler when the test creates `free`.
    let root = spool_dir("diskfull");
    std::fs::create_dir_all(&root).expect("dir");
    let spool = root.join("spool");
    // `free` is outside the tmpfs, so both sides see it.
    let free = root.with_extension("free");
    let script = format!(
        "set -e; mount -t tmpfs -o size=1m sluice-test {root}; \
         head -c 1000k /dev/zero > {root}/filler; \
         (for _ in $(seq 900); do [ -e {free} ] && break; sleep 0.1; done; rm {root}/filler) & exec \"$@\"",
        root = root.display(),
        free = free.display(),
    );
    let _ = std::fs::remove_file(&free);
    // A bounded spool (as it should be: below the volume's free space).
    let env = spooled_env(
        &proxy.endpoint(),
        &spool,
        &[
            ("SLUICE_SPOOL_SEGMENT_SIZE", "64KiB"),
            ("SLUICE_SPOOL_MAX_SIZE", "256KiB"),
        ],
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // As root, a mount namespace of its own; otherwise inside a user
    // namespace too (where unprivileged ones are allowed).
    let as_root = std::process::Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let unshare = if as_root { "-m" } else { "-rm" };
    let sidecar =
        Sidecar::start_wrapped(&["unshare", unshare, "sh", "-c", &script, "sh"], &[], &env);
    let load = {
        let tcp = sidecar.tcp.clone();
        std::thread::spawn(move || client_with("bulk", &tcp, &["2000", "0", "100"]))
    };
    wait_for(
        "the spool never hit the full disk",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || metric(&sidecar, "sluice_spool_write_errors_total") >= 1.0,
    );
    // Acks stop while nothing can be made durable.
    let acks_before = metric(&sidecar, "sluice_forward_acks_total");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(metric(&sidecar, "sluice_forward_acks_total"), acks_before);
    assert!(acks_before < 20.0, "{acks_before}");
    assert!(!load.is_finished());
    std::fs::write(&free, b"").expect("free");
    let out = load.join().expect("client");
    assert_eq!(out, [r#"{"acks": 20}"#]);
    wait_for_ids(&moto, 2000);
    let logs = sidecar.logs.clone();
    let (status, _) = sidecar.stop();
    assert!(status.success(), "{status:?}");
    let (counts, duplicates) = counted(&moto.dump());
    assert_eq!((counts.len(), duplicates), (2000, 0));
    let logs = logs.lock().expect("lock").clone();
    assert!(logs.iter().any(|l| l.contains("cannot write to the spool")));
    // Full waits (max_size) recover too; at least the disk did.
    assert!(!log_lines_with(&logs, "the spool takes events again").is_empty());
    let _ = std::fs::remove_file(&free);
}

#[test]
fn clients_that_reset_mid_frame_or_never_read_acks_do_not_hurt_the_others() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr, Box::new(|_, _| Fault::Pass));
    let dir = spool_dir("rude");
    let sidecar = start(&spooled_env(&proxy.endpoint(), &dir, &[]));
    let out = client_with("rude_clients", &sidecar.tcp, &[]);
    assert_eq!(out, [r#"{"good_acks": 10, "rude_acks": 30}"#]);
    moto.wait_for_dump("not every event arrived", |dump| {
        dump.events.len() >= 1000 + 300 + 2000
    });
    let (status, _) = sidecar.stop();
    assert!(status.success(), "{status:?}");
    // Read again now that nothing more arrives (see `wait_for_ids`).
    let dump = moto.dump();
    let mut by_kind: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for e in &dump.events {
        let (kind, n) = if let Some(rest) = e.message.strip_prefix("rude-") {
            ("rude", rest.parse().expect("n"))
        } else if let Some(rest) = e.message.strip_prefix("deaf-") {
            ("deaf", rest.parse().expect("n"))
        } else {
            ("good", event_id(&e.message))
        };
        by_kind.entry(kind).or_default().push(n);
    }
    for ids in by_kind.values_mut() {
        ids.sort_unstable();
    }
    // Every whole frame, once; the half frame never.
    assert_eq!(by_kind["good"], (0..1000).collect::<Vec<_>>());
    assert_eq!(by_kind["rude"], (0..300).collect::<Vec<_>>());
    assert_eq!(by_kind["deaf"], (0..2000).collect::<Vec<_>>());
}

#[test]
fn a_stop_while_cloudwatch_is_down_leaves_the_events_in_the_spool_for_the_next_run() {
    let moto = Moto::start();
    let (proxy, mode) = switchable(moto.addr, None);
    mode.store(DOWN, Ordering::Relaxed);
    let dir = spool_dir("stopdown");
    let env = spooled_env(
        &proxy.endpoint(),
        &dir,
        &[
            ("SLUICE_SHUTDOWN_GRACE", "3s"),
            ("SLUICE_SHUTDOWN_DRAIN", "1s"),
        ],
    );
    let first = start(&env);
    send_bulk(&first, 0, 1000);
    let logs = first.logs.clone();
    let (status, _) = first.stop();
    // The grace ran out with nothing delivered: exit 1, and the events wait
    // in the spool.
    assert_eq!(status.code(), Some(1), "{status:?}");
    let logs = logs.lock().expect("lock").clone();
    let left = log_lines_with(
        &logs,
        "events could not be delivered to CloudWatch before the grace ran out; they stay in the spool for the next run",
    );
    assert_eq!(left.len(), 1, "{logs:?}");
    assert_eq!(left[0]["fields"]["events_not_delivered"], 1000);
    assert_eq!(segments(&dir).len(), 1);

    mode.store(PASS, Ordering::Relaxed);
    let second = start(&env);
    wait_for_ids(&moto, 1000);
    let (status, _) = second.stop();
    assert!(status.success(), "{status:?}");
    let (counts, duplicates) = counted(&moto.dump());
    assert_eq!((counts.len(), duplicates), (1000, 0));
    assert_eq!(segments(&dir), Vec::<String>::new());
}
