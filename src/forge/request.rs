//! One request to a forge's REST API, as data: what the table tests compare
//! with the forges' documented formats, and what [`super::Client`] sends.

use serde_json::Value;

/// An HTTP method the forges' APIs use here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PATCH.
    Patch,
    /// PUT.
    Put,
}

impl Method {
    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Put => "PUT",
        }
    }
}

/// A request, without the token (the client adds it).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Its method.
    pub method: Method,
    /// Path and query, from the API base (`/repos/o/r/pulls?state=open`).
    pub path: String,
    /// Headers besides the token's.
    pub headers: Vec<(&'static str, String)>,
    /// Its JSON body.
    pub body: Option<Value>,
}

impl Request {
    /// A request with no headers or body.
    pub fn new(method: Method, path: String) -> Self {
        Request {
            method,
            path,
            headers: Vec::new(),
            body: None,
        }
    }

    /// The same request with header `name`.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    /// The same request with a JSON body.
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// Percent-encodes `s` for a path segment or a query value: everything but
/// RFC 3986's unreserved characters (so `/` in a GitLab project path becomes `%2F`).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_unreserved_characters_only() {
        for (raw, encoded) in [
            ("main", "main"),
            ("release/v1.2", "release%2Fv1.2"),
            ("group/sub project", "group%2Fsub%20project"),
            ("a&b=c?#", "a%26b%3Dc%3F%23"),
            ("é", "%C3%A9"),
        ] {
            assert_eq!(encode(raw), encoded, "{raw}");
        }
    }
}
