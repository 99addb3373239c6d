//! Sends a forge's requests: the token in its header (and nowhere else),
//! conditional lists (ETag), and backoff on 429 and 5xx. After the retries of
//! one call give up, the forge is left alone for a while: every call fails
//! at once with [`ForgeError::Unavailable`] instead of waiting.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{find_marked, Api, ForgeError, ForgeKind, PullRequest, Request, Status, Token};

/// How a client retries a forge that answers 429 or 5xx.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts of one request, the first included.
    pub attempts: u32,
    /// The wait after the first failure; doubled after each next one.
    pub first: Duration,
    /// The longest wait (a `Retry-After` is capped to it too).
    pub max: Duration,
    /// How long the forge is left alone once the attempts are used up.
    pub cool_down: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 3,
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
            cool_down: Duration::from_secs(300),
        }
    }
}

impl Retry {
    /// The wait before attempt `attempt + 1` (`attempt` from 1), or the
    /// forge's `Retry-After`, both capped to [`Retry::max`].
    pub fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let doubled = self
            .first
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        retry_after.unwrap_or(doubled).min(self.max)
    }
}

/// Whether an answer's status is worth asking again for.
pub fn is_retryable(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// The answer of a conditional list of pull requests.
#[derive(Debug, Clone, PartialEq)]
pub enum Listed {
    /// Nothing changed since the list whose ETag was given.
    NotModified,
    /// The open pull requests targeting the branch, newest first, with the
    /// ETag to send next time (if the forge gave one).
    Pulls(Vec<PullRequest>, Option<String>),
}

/// What [`Client::upsert_comment`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// Posted a new comment.
    Created,
    /// Edited the marked comment: its text had changed.
    Edited,
    /// The marked comment already said that: no write.
    Unchanged,
}

/// A client of one repository on one forge.
pub struct Client {
    http: reqwest::Client,
    base: String,
    api: Box<dyn Api>,
    token: Token,
    retry: Retry,
    /// Until when the forge is left alone, after it kept failing.
    resting: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("forge", &self.api.kind())
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of `api`'s repository at API base `base` (such as
    /// `https://gitea.example`, `https://api.github.com`, `https://gitlab.com`).
    pub fn new(base: &str, api: Box<dyn Api>, token: Token, retry: Retry) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("kubemint/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            api,
            token,
            retry,
            resting: Mutex::new(None),
        }
    }

    /// The forge's interface (the head ref of a pull request, its kind).
    pub fn api(&self) -> &dyn Api {
        self.api.as_ref()
    }

    /// The open pull requests targeting `base`, newest first, at most
    /// `limit`; `etag` is the one of the last list, to learn cheaply that
    /// nothing changed.
    pub async fn list_pulls(
        &self,
        base: &str,
        limit: usize,
        etag: Option<&str>,
    ) -> Result<Listed, ForgeError> {
        let mut request = self.api.list_pulls(base, limit);
        if let Some(etag) = etag {
            request = request.header("If-None-Match", etag);
        }
        let answer = self.send(&request).await?;
        if answer.status == 304 {
            return Ok(Listed::NotModified);
        }
        let mut pulls = self.api.parse_pulls(&answer.body, base)?;
        pulls.sort_by_key(|p| std::cmp::Reverse(p.number));
        pulls.truncate(limit);
        Ok(Listed::Pulls(pulls, answer.etag))
    }

    /// Makes the comment marked `marker` on pull request `number` say `body`
    /// (which must contain the marker): posts it, or edits it only if its
    /// text changed.
    pub async fn upsert_comment(
        &self,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<Upserted, ForgeError> {
        let answer = self.send(&self.api.list_comments(number)).await?;
        let comments = self.api.parse_comments(&answer.body)?;
        match find_marked(&comments, marker) {
            Some(c) if c.body.trim_end() == body.trim_end() => Ok(Upserted::Unchanged),
            Some(c) => {
                self.send(&self.api.edit_comment(number, c.id, body))
                    .await?;
                Ok(Upserted::Edited)
            }
            None => {
                self.send(&self.api.create_comment(number, body)).await?;
                Ok(Upserted::Created)
            }
        }
    }

    /// Sets `status` on commit `sha`.
    pub async fn set_status(&self, sha: &str, status: &Status) -> Result<(), ForgeError> {
        self.send(&self.api.set_status(sha, status)).await?;
        Ok(())
    }

    /// Sends `request`, retrying 429 and 5xx; 304 is an answer, not an error.
    async fn send(&self, request: &Request) -> Result<Answer, ForgeError> {
        let forge = self.api.kind();
        let unavailable = |status, retry_after| ForgeError::Unavailable {
            forge,
            method: request.method.name(),
            path: request.path.clone(),
            status,
            retry_after,
        };
        if let Some(until) = *self.resting.lock().expect("not poisoned") {
            let now = Instant::now();
            if now < until {
                return Err(unavailable(0, until - now));
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let answer = self.send_once(request).await?;
            if !is_retryable(answer.status) {
                if answer.status >= 400 {
                    return Err(ForgeError::Status {
                        forge,
                        method: request.method.name(),
                        path: request.path.clone(),
                        status: answer.status,
                        message: answer.message(),
                    });
                }
                return Ok(answer);
            }
            if attempt >= self.retry.attempts {
                *self.resting.lock().expect("not poisoned") =
                    Some(Instant::now() + self.retry.cool_down);
                return Err(unavailable(answer.status, self.retry.cool_down));
            }
            tokio::time::sleep(self.retry.wait(attempt, answer.retry_after)).await;
        }
    }

    async fn send_once(&self, request: &Request) -> Result<Answer, ForgeError> {
        let method = match request.method {
            super::Method::Get => reqwest::Method::GET,
            super::Method::Post => reqwest::Method::POST,
            super::Method::Patch => reqwest::Method::PATCH,
            super::Method::Put => reqwest::Method::PUT,
        };
        let (name, value) = self.api.authorization(&self.token);
        let mut builder = self
            .http
            .request(method, format!("{}{}", self.base, request.path))
            .header(name, value);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let transport = |e: reqwest::Error| ForgeError::Transport {
            forge: self.api.kind(),
            url: self.base.clone(),
            // Without the URL: reqwest's message is enough, and no query leaks.
            message: e.without_url().to_string(),
        };
        let response = builder.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header("etag");
        let retry_after = header("retry-after")
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(transport)?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            etag,
            retry_after,
            body,
            raw: String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned(),
        })
    }

    /// Which forge this client asks.
    pub fn kind(&self) -> ForgeKind {
        self.api.kind()
    }
}

/// One answer of the forge.
struct Answer {
    status: u16,
    etag: Option<String>,
    retry_after: Option<Duration>,
    body: Value,
    /// The start of the body, for error messages.
    raw: String,
}

impl Answer {
    /// The forge's own words about an error: its `message` field, or the start of the body.
    fn message(&self) -> String {
        let text = self
            .body
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| self.raw.clone());
        text.chars().take(200).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_and_are_capped_and_retry_after_wins() {
        let retry = Retry {
            attempts: 5,
            first: Duration::from_secs(1),
            max: Duration::from_secs(10),
            cool_down: Duration::from_secs(60),
        };
        for (attempt, retry_after, wait) in [
            (1, None, 1),
            (2, None, 2),
            (3, None, 4),
            (4, None, 8),
            (5, None, 10),
            (40, None, 10),
            (1, Some(7), 7),
            (1, Some(3600), 10),
        ] {
            assert_eq!(
                retry.wait(attempt, retry_after.map(Duration::from_secs)),
                Duration::from_secs(wait),
                "attempt {attempt}, Retry-After {retry_after:?}"
            );
        }
    }

    #[test]
    fn only_429_and_5xx_are_retried() {
        for (status, retried) in [
            (200, false),
            (304, false),
            (401, false),
            (404, false),
            (422, false),
            (429, true),
            (500, true),
            (502, true),
            (503, true),
        ] {
            assert_eq!(is_retryable(status), retried, "{status}");
        }
    }
}
