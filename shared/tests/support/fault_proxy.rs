//! A fault-injecting HTTP/1.1 proxy between the AWS SDK and moto, on 127.0.0.1.
//!
//! The SDK is pointed at the proxy's endpoint; each request is recognised by its operation
//! (DynamoDB `X-Amz-Target: DynamoDB_20120810.PutItem`, SNS `Action=PublishBatch` in the
//! form body, S3 `x-id=GetObject` in the query) and either forwarded to moto or answered
//! by the first matching [`Fault`]: a throttling error in the service's own wire format,
//! a 5xx, a connection reset, or a delay past the SDK's attempt timeout. Every request is
//! recorded ([`Seen`]) with the SDK's `amz-sdk-invocation-id` and `amz-sdk-request:
//! attempt=N` headers, so tests can see each retry of one call and when it happened.
//!
//! Plain threads and blocking sockets: the proxy must not depend on the runtime under
//! test. One request per connection (`Connection: close` both ways) keeps framing simple
//! and the SDK's connection pool honest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How a matched request is answered.
#[derive(Debug, Clone)]
pub enum Reply {
    /// An HTTP response with this status, content type and body (not forwarded).
    Status {
        /// HTTP status.
        status: u16,
        /// `Content-Type`.
        content_type: &'static str,
        /// Body.
        body: String,
    },
    /// Close the connection without answering (a dispatch failure for the SDK).
    Reset,
    /// Wait this long, then forward (the SDK gives up first when it exceeds the attempt
    /// timeout).
    Delay(Duration),
}

/// One scripted fault.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Operation name: `PutItem`, `UpdateItem`, `GetItem`, `PublishBatch`, `GetObject`, ...
    pub op: &'static str,
    /// Only requests whose path (with query) contains this.
    pub path_contains: Option<String>,
    /// Only requests whose body contains this (e.g. an `eventID` inside a `PutItem`).
    pub body_contains: Option<String>,
    /// Answer.
    pub reply: Reply,
    /// How many requests it answers; `None` = every one until cleared.
    pub times: Option<usize>,
}

impl Fault {
    /// DynamoDB's JSON error (`__type` carries the code) with status 400.
    pub fn dynamodb(op: &'static str, code: &str) -> Fault {
        Fault {
            op,
            path_contains: None,
            body_contains: None,
            reply: Reply::Status {
                status: 400,
                content_type: "application/x-amz-json-1.0",
                body: format!(
                    r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"injected {code}"}}"#
                ),
            },
            times: None,
        }
    }

    /// SNS's query-protocol XML error with status 400.
    pub fn sns(op: &'static str, code: &str) -> Fault {
        Fault {
            op,
            path_contains: None,
            body_contains: None,
            reply: Reply::Status {
                status: 400,
                content_type: "text/xml",
                body: format!(
                    "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error>\
                     <Type>Sender</Type><Code>{code}</Code><Message>injected {code}</Message>\
                     </Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
                ),
            },
            times: None,
        }
    }

    /// S3's XML error with the given status (`SlowDown` is a 503).
    pub fn s3(op: &'static str, status: u16, code: &str) -> Fault {
        Fault {
            op,
            path_contains: None,
            body_contains: None,
            reply: Reply::Status {
                status,
                content_type: "application/xml",
                body: format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>\
                     <Message>injected {code}</Message><RequestId>0</RequestId></Error>"
                ),
            },
            times: None,
        }
    }

    /// A bare 5xx with an empty body (what a load balancer in front of a service sends).
    pub fn status(op: &'static str, status: u16) -> Fault {
        Fault {
            op,
            path_contains: None,
            body_contains: None,
            reply: Reply::Status {
                status,
                content_type: "text/plain",
                body: String::new(),
            },
            times: None,
        }
    }

    /// Answer only the first `n` matching requests.
    pub fn times(mut self, n: usize) -> Fault {
        self.times = Some(n);
        self
    }

    /// Only requests whose path contains `s`.
    pub fn on_path(mut self, s: &str) -> Fault {
        self.path_contains = Some(s.to_owned());
        self
    }

    /// Only requests whose body contains `s`.
    pub fn on_body(mut self, s: &str) -> Fault {
        self.body_contains = Some(s.to_owned());
        self
    }

    /// Replace the reply.
    pub fn with_reply(mut self, reply: Reply) -> Fault {
        self.reply = reply;
        self
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Operation name (see [`Fault::op`]); `METHOD` when unknown.
    pub op: String,
    /// Path with query.
    pub path: String,
    /// `amz-sdk-invocation-id`: the same for every attempt of one SDK call.
    pub invocation: Option<String>,
    /// The attempt number from `amz-sdk-request: attempt=N; max=M`.
    pub attempt: Option<u32>,
    /// When it arrived.
    pub at: Instant,
    /// Whether a fault answered it.
    pub faulted: bool,
}

#[derive(Default)]
struct State {
    faults: Vec<Fault>,
    seen: Vec<Seen>,
}

/// The running proxy; stops accepting on drop.
pub struct FaultProxy {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Listen on a free 127.0.0.1 port and forward to `upstream` (`127.0.0.1:<port>`).
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, up) = (state.clone(), stop.clone(), upstream.to_owned());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, up) = (st.clone(), up.clone());
                thread::spawn(move || {
                    let _ = serve(conn, &up, &st);
                });
            }
        });
        FaultProxy { port, state, stop }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Add a fault (faults are tried in the order added).
    pub fn add(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push(fault);
    }

    /// Remove every fault: requests are forwarded from now on.
    pub fn clear(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Requests of one operation.
    pub fn seen_op(&self, op: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.op == op).collect()
    }

    /// Forget what was seen.
    pub fn reset_seen(&self) {
        self.state.lock().unwrap().seen.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the accept loop
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn op(&self) -> String {
        if let Some(t) = self.header("x-amz-target") {
            return t.rsplit('.').next().unwrap_or(t).to_owned();
        }
        if let Some(x) = self
            .path
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("x-id="))
        {
            return x.to_owned();
        }
        let body = String::from_utf8_lossy(&self.body);
        if let Some(a) = body.split('&').find_map(|p| p.strip_prefix("Action=")) {
            return a.to_owned();
        }
        self.method.clone()
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let mut req = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        // de-chunk, and forward with a Content-Length instead
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            req.body.extend_from_slice(&chunk[..n]);
        }
        req.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("transfer-encoding"));
        let len = req.body.len().to_string();
        req.headers.push(("Content-Length".into(), len));
    } else if let Some(n) = req.header("content-length").and_then(|v| v.parse().ok()) {
        let mut body = vec![0u8; n];
        r.read_exact(&mut body)?;
        req.body = body;
    }
    Ok(Some(req))
}

fn serve(conn: TcpStream, upstream: &str, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let Some(req) = read_request(&mut reader)? else {
        return Ok(());
    };
    let mut client = conn;
    let op = req.op();
    let reply = {
        let mut st = state.lock().unwrap();
        let hit = st.faults.iter_mut().find(|f| {
            f.op == op
                && f.times != Some(0)
                && f.path_contains
                    .as_deref()
                    .is_none_or(|p| req.path.contains(p))
                && f.body_contains
                    .as_deref()
                    .is_none_or(|b| req.body.windows(b.len().max(1)).any(|w| w == b.as_bytes()))
        });
        let reply = hit.map(|f| {
            if let Some(n) = f.times.as_mut() {
                *n -= 1;
            }
            f.reply.clone()
        });
        let attempt = req
            .header("amz-sdk-request")
            .and_then(|v| v.split(';').find_map(|p| p.trim().strip_prefix("attempt=")))
            .and_then(|n| n.parse().ok());
        st.seen.push(Seen {
            op: op.clone(),
            path: req.path.clone(),
            invocation: req.header("amz-sdk-invocation-id").map(str::to_owned),
            attempt,
            at: Instant::now(),
            faulted: matches!(reply, Some(Reply::Status { .. } | Reply::Reset)),
        });
        reply
    };
    match reply {
        Some(Reply::Status {
            status,
            content_type,
            body,
        }) => {
            let head = format!(
                "HTTP/1.1 {status} Injected\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
                 x-amzn-RequestId: injected\r\nConnection: close\r\n\r\n",
                body.len()
            );
            client.write_all(head.as_bytes())?;
            client.write_all(body.as_bytes())?;
        }
        Some(Reply::Reset) => {}
        Some(Reply::Delay(d)) => {
            thread::sleep(d);
            forward(&req, upstream, &mut client)?;
        }
        None => forward(&req, upstream, &mut client)?,
    }
    let _ = client.flush();
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

fn forward(req: &Request, upstream: &str, client: &mut TcpStream) -> std::io::Result<()> {
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for (k, v) in &req.headers {
        if !k.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes())?;
    up.write_all(&req.body)?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    // make the client close too: its pool must not reuse a connection the proxy closes
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(resp.len(), |i| i + 4);
    let (h, body) = resp.split_at(split);
    let h = String::from_utf8_lossy(h);
    let mut out = String::new();
    for line in h.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    client.write_all(out.as_bytes())?;
    client.write_all(body)?;
    Ok(())
}
