//! The little HTTP/1.1 that `zclab http` speaks: one request per
//! connection, `GET` or `HEAD` of `/` or `/NAME` (the file's own name), the
//! file with its Content-Length, and the connection closed after the
//! response. Pure bytes: both servers (the kernel's TCP with sendfile, and
//! zclab's own TCP on AF_XDP) share it.

/// The longest request taken: a longer one gets 400.
pub const MAX_REQUEST: usize = 8 << 10;

/// What a request asks for, once its head is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The file, with its body (`GET`) or without (`HEAD`).
    File {
        head_only: bool,
    },
    NotFound {
        head_only: bool,
    },
    /// A method other than GET and HEAD.
    NotAllowed,
    /// Not HTTP this server can read, or longer than [`MAX_REQUEST`].
    Bad,
}

impl Request {
    /// The response's status code.
    pub fn status(&self) -> u16 {
        match self {
            Request::File { .. } => 200,
            Request::NotFound { .. } => 404,
            Request::NotAllowed => 405,
            Request::Bad => 400,
        }
    }
}

/// Reads the request in `bytes` (all that came so far): None while its head
/// is not complete and the limit not passed.
pub fn parse(bytes: &[u8], name: &str) -> Option<Request> {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (bytes.len() > MAX_REQUEST).then_some(Request::Bad);
    };
    if end + 4 > MAX_REQUEST {
        return Some(Request::Bad);
    }
    let Ok(head) = std::str::from_utf8(&bytes[..end]) else { return Some(Request::Bad) };
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Some(Request::Bad);
    };
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") || !target.starts_with('/') || method.is_empty() {
        return Some(Request::Bad);
    }
    // Every header line must be `Name: value`.
    if lines.any(|l| l.split_once(':').is_none_or(|(n, _)| n.is_empty() || n.contains(' '))) {
        return Some(Request::Bad);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Some(Request::NotAllowed),
    };
    let path = target.split('?').next().unwrap_or("");
    if path == "/" || path.strip_prefix('/') == Some(name) {
        Some(Request::File { head_only })
    } else {
        Some(Request::NotFound { head_only })
    }
}

/// The response's head (and, for the errors, their short body), and how
/// many bytes of the file follow it.
pub fn respond(req: &Request, file_len: u64) -> (Vec<u8>, u64) {
    let (status, body, file) = match req {
        Request::File { head_only } => ("200 OK", String::new(), if *head_only { 0 } else { file_len }),
        Request::NotFound { .. } => ("404 Not Found", "not found: this server has one file, at / and /NAME\n".to_string(), 0),
        Request::NotAllowed => ("405 Method Not Allowed", "only GET and HEAD\n".to_string(), 0),
        Request::Bad => ("400 Bad Request", "bad request\n".to_string(), 0),
    };
    let length = if matches!(req, Request::File { .. }) { file_len } else { body.len() as u64 };
    let body = if matches!(req, Request::NotFound { head_only: true }) { String::new() } else { body };
    let mut head = format!("HTTP/1.1 {status}\r\nServer: zclab\r\nContent-Length: {length}\r\nConnection: close\r\n");
    if matches!(req, Request::NotAllowed) {
        head += "Allow: GET, HEAD\r\n";
    }
    if matches!(req, Request::File { .. }) {
        head += "Content-Type: application/octet-stream\r\n";
    } else {
        head += "Content-Type: text/plain\r\n";
    }
    head += "\r\n";
    head += &body;
    (head.into_bytes(), file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_a_server_must() {
        let get = |t: &str| parse(format!("GET {t} HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/7\r\n\r\n").as_bytes(), "f.bin");
        assert_eq!(get("/"), Some(Request::File { head_only: false }));
        assert_eq!(get("/f.bin"), Some(Request::File { head_only: false }));
        assert_eq!(get("/f.bin?x=1"), Some(Request::File { head_only: false }));
        assert_eq!(get("/other"), Some(Request::NotFound { head_only: false }));
        assert_eq!(parse(b"HEAD / HTTP/1.1\r\n\r\n", "f"), Some(Request::File { head_only: true }));
        assert_eq!(parse(b"POST / HTTP/1.1\r\n\r\n", "f"), Some(Request::NotAllowed));
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost", "f"), None, "not complete yet");
        assert_eq!(parse(b"GARBAGE\r\n\r\n", "f"), Some(Request::Bad));
        assert_eq!(parse(b"GET / HTTP/9\r\n\r\n", "f"), Some(Request::Bad));
        assert_eq!(parse(b"GET / HTTP/1.1\r\nno colon\r\n\r\n", "f"), Some(Request::Bad));
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_REQUEST));
        assert_eq!(parse(long.as_bytes(), "f"), Some(Request::Bad));
        assert_eq!(parse(&vec![b'a'; MAX_REQUEST + 1], "f"), Some(Request::Bad), "no end in sight");
    }

    #[test]
    fn responses_say_the_length_that_follows() {
        let (h, n) = respond(&Request::File { head_only: false }, 12345);
        let h = String::from_utf8(h).unwrap();
        assert!(h.starts_with("HTTP/1.1 200 OK\r\n") && h.contains("Content-Length: 12345\r\n") && h.ends_with("\r\n\r\n"));
        assert_eq!(n, 12345);
        assert_eq!(respond(&Request::File { head_only: true }, 12345).1, 0, "HEAD: the length, no body");
        let (h, n) = respond(&Request::NotFound { head_only: false }, 9);
        let h = String::from_utf8(h).unwrap();
        let body = h.split("\r\n\r\n").nth(1).unwrap();
        assert!(h.starts_with("HTTP/1.1 404") && h.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert_eq!(n, 0);
        assert!(String::from_utf8(respond(&Request::Bad, 0).0).unwrap().starts_with("HTTP/1.1 400"));
    }
}
