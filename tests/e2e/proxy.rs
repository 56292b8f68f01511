//! A recording, fault-injecting HTTP proxy between the sidecar and moto.
//!
//! moto enforces few PutLogEvents rules, so every request the sidecar sends
//! is recorded here and checked by the tests against all of them. A fault
//! plan can answer a request itself (ThrottlingException, a 500,
//! InvalidParameterException) or drop the connection, instead of passing it
//! on. One request per connection: every response says `connection: close`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value as Json;

/// What the proxy does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// 400 ThrottlingException, as CloudWatch answers over the quota.
    Throttle,
    /// 500 ServiceUnavailableException.
    Unavailable,
    /// Reads the request, then closes the connection without an answer.
    Drop,
    /// 400 InvalidParameterException.
    Invalid,
    /// Reads the request and answers nothing for as long as the plan still
    /// says `Hang`, then closes the connection: a CloudWatch that accepts
    /// connections and times out.
    Hang,
}

/// Decides the fault for a request: its X-Amz-Target operation (such as
/// `PutLogEvents`) and JSON body.
pub type Plan = Box<dyn Fn(&str, &Json) -> Fault + Send + Sync>;

/// What a [`switchable`] proxy does: pass everything on.
pub const PASS: u8 = 0;
/// Answer 500 to everything.
pub const DOWN: u8 = 1;
/// Accept connections and never answer.
pub const HANG: u8 = 2;
/// Throttle nine PutLogEvents in ten.
pub const STORM: u8 = 3;

/// A proxy whose behaviour the test switches (PASS, DOWN, HANG, STORM).
pub fn switchable(upstream: SocketAddr, at: Option<SocketAddr>) -> (FaultProxy, Arc<AtomicU8>) {
    let mode = Arc::new(AtomicU8::new(PASS));
    let seen = Arc::new(AtomicUsize::new(0));
    let plan_mode = mode.clone();
    let plan = Box::new(
        move |operation: &str, _: &Json| match plan_mode.load(Ordering::Relaxed) {
            DOWN => Fault::Unavailable,
            HANG => Fault::Hang,
            // Nine in ten PutLogEvents refused: a storm, but some get through.
            STORM if operation == "PutLogEvents" => {
                if seen.fetch_add(1, Ordering::Relaxed) % 10 == 9 {
                    Fault::Pass
                } else {
                    Fault::Throttle
                }
            }
            _ => Fault::Pass,
        },
    );
    let proxy = match at {
        Some(addr) => FaultProxy::start_on(addr, upstream, plan),
        None => FaultProxy::start(upstream, plan),
    };
    (proxy, mode)
}

/// One request the proxy saw.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub operation: String,
    pub body: Json,
    pub fault: Fault,
    /// The HTTP status the sidecar got (0: none, the connection dropped).
    pub status: u16,
    /// The `x-amzn-logs-format` header, if any.
    pub logs_format: Option<String>,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr, plan: Plan) -> FaultProxy {
        FaultProxy::start_on("127.0.0.1:0".parse().expect("addr"), upstream, plan)
    }

    /// [`FaultProxy::start`] on a given address (one the sidecar was
    /// already told about, refused until now).
    pub fn start_on(addr: SocketAddr, upstream: SocketAddr, plan: Plan) -> FaultProxy {
        let listener = TcpListener::bind(addr).expect("proxy port");
        let addr = listener.local_addr().expect("proxy addr");
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let plan = Arc::new(plan);
        {
            let (recorded, stop) = (recorded.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (recorded, plan) = (recorded.clone(), plan.clone());
                    std::thread::spawn(move || serve(conn, upstream, &plan, &recorded));
                }
            });
        }
        FaultProxy {
            addr,
            recorded,
            stop,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request seen so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.recorded.lock().expect("lock").clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

fn serve(mut conn: TcpStream, upstream: SocketAddr, plan: &Plan, recorded: &Mutex<Vec<Recorded>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    // One request; the response closes the connection.
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let operation = request
        .header("x-amz-target")
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or_default()
        .to_string();
    let body: Json = serde_json::from_slice(&request.body).unwrap_or(Json::Null);
    let fault = plan(&operation, &body);
    let answer = |status: &str, kind: &str| {
        let body = format!("{{\"__type\":\"{kind}\",\"message\":\"injected by the test proxy\"}}");
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: proxy\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let reply = match fault {
        Fault::Pass => forward(upstream, &request),
        Fault::Throttle => answer("400 Bad Request", "ThrottlingException").into_bytes(),
        Fault::Unavailable => {
            answer("500 Internal Server Error", "ServiceUnavailableException").into_bytes()
        }
        Fault::Invalid => answer("400 Bad Request", "InvalidParameterException").into_bytes(),
        Fault::Drop => Vec::new(),
        Fault::Hang => {
            while plan(&operation, &body) == Fault::Hang {
                std::thread::sleep(Duration::from_millis(100));
            }
            Vec::new()
        }
    };
    // "HTTP/1.1 200 OK": the status is the second word.
    let status = String::from_utf8_lossy(&reply[..reply.len().min(16)])
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    recorded.lock().expect("lock").push(Recorded {
        operation,
        body,
        fault,
        status,
        logs_format: request.header("x-amzn-logs-format").map(str::to_string),
    });
    let _ = conn.write_all(&reply);
    let _ = conn.shutdown(Shutdown::Both);
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut request = Request {
        head,
        body: Vec::new(),
    };
    assert!(
        request.header("transfer-encoding").is_none(),
        "the proxy reads Content-Length bodies only"
    );
    let len: usize = request
        .header("content-length")
        .map_or(0, |v| v.parse().expect("content-length"));
    request.body = vec![0; len];
    reader.read_exact(&mut request.body).ok()?;
    Some(request)
}

/// Sends the request to moto on a new connection and returns its whole
/// response (moto closes the connection after it).
fn forward(upstream: SocketAddr, request: &Request) -> Vec<u8> {
    let mut out = TcpStream::connect(upstream).expect("moto is up");
    let mut head = String::new();
    for (i, line) in request.head.lines().enumerate() {
        if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("connection: close\r\n\r\n");
    out.write_all(head.as_bytes()).expect("to moto");
    out.write_all(&request.body).expect("to moto");
    let mut response = Vec::new();
    out.read_to_end(&mut response).expect("from moto");
    response
}

/// Every PutLogEvents rule (shared/specs.md §3), checked on one recorded
/// request; returns what is wrong with it.
pub fn put_log_events_violations(body: &Json) -> Vec<String> {
    let mut wrong = Vec::new();
    let events = body["logEvents"].as_array().cloned().unwrap_or_default();
    if events.is_empty() || events.len() > 10_000 {
        wrong.push(format!("{} events", events.len()));
    }
    let mut bytes = 0usize;
    let mut previous = i64::MIN;
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    for event in &events {
        let message = event["message"].as_str().unwrap_or_default();
        let ts = event["timestamp"].as_i64().unwrap_or(i64::MIN);
        if message.is_empty() || message.len() > 1_048_576 - 26 {
            wrong.push(format!("a message of {} bytes", message.len()));
        }
        if ts < previous {
            wrong.push(format!("timestamp {ts} after {previous}"));
        }
        previous = ts;
        first = first.min(ts);
        last = last.max(ts);
        bytes += message.len() + 26;
    }
    if bytes > 1_048_576 {
        wrong.push(format!("{bytes} bytes"));
    }
    if !events.is_empty() && last - first > 24 * 3600 * 1000 {
        wrong.push(format!("a span of {} ms", last - first));
    }
    for name in ["logGroupName", "logStreamName"] {
        let value = body[name].as_str().unwrap_or_default();
        if value.is_empty() || value.len() > 512 {
            wrong.push(format!("{name} {value:?}"));
        }
    }
    if body.get("sequenceToken").is_some() {
        wrong.push("a sequence token".to_string());
    }
    wrong
}
