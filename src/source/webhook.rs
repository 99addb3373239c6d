//! Webhook payloads: who sent a request, whether it is authentic, and which ref
//! a push moved. Pure functions over headers and body; the HTTP side is in
//! `server::hooks`.
//!
//! Three senders are understood:
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, event in `X-GitHub-Event`;
//! - GitLab: `X-Gitlab-Token: <token>`, event in `X-Gitlab-Event`;
//! - generic: `X-Signature-256: sha256=<hex HMAC-SHA256 of the body>` (the `sha256=` prefix is
//!   optional); a JSON body with a `ref` field limits the trigger to that ref.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::RefRequest;

/// Largest body accepted. GitHub caps push payloads at 25 MB, but a push that
/// large carries thousands of commits, which we do not read: 4 MiB is plenty.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// GitHub's signature header.
pub const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
/// GitLab's secret token header.
pub const GITLAB_TOKEN: &str = "x-gitlab-token";
/// The generic HMAC-SHA256 header.
pub const GENERIC_SIGNATURE: &str = "x-signature-256";

/// Who sent a request, judged by the header that authenticates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `X-Hub-Signature-256`.
    GitHub,
    /// `X-Gitlab-Token`.
    GitLab,
    /// `X-Signature-256`.
    Generic,
}

impl Provider {
    /// Lower-case name, for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Generic => "generic",
        }
    }
}

/// Why a request is refused. Messages never quote a token or a signature.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// No authenticating header at all.
    #[error("unsigned request: send X-Hub-Signature-256 (GitHub), X-Gitlab-Token (GitLab) or X-Signature-256 (HMAC-SHA256 of the body)")]
    Unsigned,
    /// The header is there but does not match the channel's secret.
    #[error("{header} does not match the channel's webhook secret")]
    BadSignature {
        /// The header that was checked.
        header: &'static str,
    },
    /// The signature header is not `sha256=<64 hex digits>`.
    #[error("{header} is malformed: expected sha256=<hex HMAC-SHA256 of the body>")]
    MalformedSignature {
        /// The header that was checked.
        header: &'static str,
    },
    /// The body of a push event is not the JSON the provider sends.
    #[error("the push payload cannot be read: {0}")]
    BadPayload(String),
}

impl WebhookError {
    /// CamelCase reason, for logs and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            WebhookError::Unsigned => "Unsigned",
            WebhookError::BadSignature { .. } => "BadSignature",
            WebhookError::MalformedSignature { .. } => "MalformedSignature",
            WebhookError::BadPayload(_) => "BadPayload",
        }
    }
}

/// Checks the request against the channel's webhook `token` and says who sent it.
///
/// Comparisons are constant-time, so a caller cannot learn the token byte by byte.
pub fn authenticate(
    headers: &HeaderMap,
    body: &[u8],
    token: &[u8],
) -> Result<Provider, WebhookError> {
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
    if let Some(signature) = header(GITHUB_SIGNATURE) {
        check_hmac(GITHUB_SIGNATURE, signature, body, token)?;
        return Ok(Provider::GitHub);
    }
    if let Some(given) = header(GITLAB_TOKEN) {
        // Equal lengths first: `ct_eq` on slices of different lengths is false anyway,
        // and the token's length is not a secret worth hiding.
        if given.ct_eq(token).into() {
            return Ok(Provider::GitLab);
        }
        return Err(WebhookError::BadSignature {
            header: GITLAB_TOKEN,
        });
    }
    if let Some(signature) = header(GENERIC_SIGNATURE) {
        check_hmac(GENERIC_SIGNATURE, signature, body, token)?;
        return Ok(Provider::Generic);
    }
    Err(WebhookError::Unsigned)
}

fn check_hmac(
    header: &'static str,
    signature: &[u8],
    body: &[u8],
    token: &[u8],
) -> Result<(), WebhookError> {
    let hex_digest = signature.strip_prefix(b"sha256=").unwrap_or(signature);
    let expected =
        hex::decode(hex_digest).map_err(|_| WebhookError::MalformedSignature { header })?;
    let mut mac = Hmac::<Sha256>::new_from_slice(token).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::BadSignature { header })
}

/// The signature header value a sender computes: `sha256=<hex>`. Tests and
/// clients use it; the receiver uses [`authenticate`].
pub fn sign(body: &[u8], token: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What an authenticated request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A push; `reference` is the full ref it moved, when the payload names one.
    Push {
        /// e.g. `refs/heads/main`.
        reference: Option<String>,
    },
    /// A connectivity check (GitHub `ping`).
    Ping,
    /// Another event (issues, merge requests...): nothing to do.
    Other(String),
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    reference: Option<String>,
}

/// Reads the event of an authenticated request.
pub fn event(provider: Provider, headers: &HeaderMap, body: &[u8]) -> Result<Event, WebhookError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let push_ref = || -> Result<Option<String>, WebhookError> {
        serde_json::from_slice::<PushPayload>(body)
            .map(|p| p.reference)
            .map_err(|e| WebhookError::BadPayload(e.to_string()))
    };
    match provider {
        Provider::GitHub => match header("x-github-event").as_str() {
            "push" => Ok(Event::Push {
                reference: Some(push_ref()?.ok_or_else(|| {
                    WebhookError::BadPayload("a push event without `ref`".into())
                })?),
            }),
            "ping" => Ok(Event::Ping),
            other => Ok(Event::Other(other.to_string())),
        },
        Provider::GitLab => match header("x-gitlab-event").as_str() {
            "Push Hook" | "Tag Push Hook" => Ok(Event::Push {
                reference: Some(push_ref()?.ok_or_else(|| {
                    WebhookError::BadPayload("a push event without `ref`".into())
                })?),
            }),
            other => Ok(Event::Other(other.to_string())),
        },
        // A generic sender may post anything signed; a JSON `ref` narrows it.
        Provider::Generic => Ok(Event::Push {
            reference: push_ref().ok().flatten(),
        }),
    }
}

/// Whether `event` should trigger a sync of a channel that follows `followed`.
/// `Err` carries why not, for the response body.
pub fn should_sync(followed: &RefRequest, event: &Event) -> Result<(), String> {
    match event {
        Event::Push { reference: None } => Ok(()),
        Event::Push {
            reference: Some(pushed),
        } if followed.is_moved_by(pushed) => Ok(()),
        Event::Push {
            reference: Some(pushed),
        } => Err(format!(
            "push to {pushed} ignored: the channel follows {}",
            followed.describe()
        )),
        Event::Ping => Err("ping received; pushes to the channel's ref will trigger a sync".into()),
        Event::Other(name) => Err(format!(
            "event '{name}' ignored: only pushes trigger a sync"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const TOKEN: &[u8] = b"It's a Secret to Everybody";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn github_signature_matches_the_documented_example() {
        // The example from GitHub's "Validating webhook deliveries" documentation.
        assert_eq!(
            sign(b"Hello, World!", TOKEN),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        let h = headers(&[(GITHUB_SIGNATURE, &sign(b"Hello, World!", TOKEN))]);
        assert_eq!(
            authenticate(&h, b"Hello, World!", TOKEN),
            Ok(Provider::GitHub)
        );
    }

    #[test]
    fn a_tampered_body_or_wrong_secret_is_refused() {
        let h = headers(&[(GITHUB_SIGNATURE, &sign(b"body", TOKEN))]);
        let bad = Err(WebhookError::BadSignature {
            header: GITHUB_SIGNATURE,
        });
        assert_eq!(authenticate(&h, b"body!", TOKEN), bad);
        assert_eq!(authenticate(&h, b"body", b"other"), bad);
    }

    #[test]
    fn unsigned_and_malformed_requests_are_refused() {
        assert_eq!(
            authenticate(&HeaderMap::new(), b"{}", TOKEN),
            Err(WebhookError::Unsigned)
        );
        let h = headers(&[(GITHUB_SIGNATURE, "sha256=not-hex")]);
        assert_eq!(
            authenticate(&h, b"{}", TOKEN),
            Err(WebhookError::MalformedSignature {
                header: GITHUB_SIGNATURE
            })
        );
    }

    #[test]
    fn gitlab_token_must_match_exactly() {
        let ok = headers(&[(GITLAB_TOKEN, "It's a Secret to Everybody")]);
        assert_eq!(authenticate(&ok, b"{}", TOKEN), Ok(Provider::GitLab));
        for wrong in [
            "It's a Secret to Everybod",
            "It's a Secret to Everybody!",
            "",
        ] {
            let h = headers(&[(GITLAB_TOKEN, wrong)]);
            assert!(authenticate(&h, b"{}", TOKEN).is_err(), "{wrong:?}");
        }
    }

    #[test]
    fn generic_hmac_accepts_bare_hex() {
        let signed = sign(b"{}", TOKEN);
        let bare = signed.trim_start_matches("sha256=");
        let h = headers(&[(GENERIC_SIGNATURE, bare)]);
        assert_eq!(authenticate(&h, b"{}", TOKEN), Ok(Provider::Generic));
    }

    #[test]
    fn errors_never_quote_the_token() {
        let h = headers(&[(GITLAB_TOKEN, "guess")]);
        let message = authenticate(&h, b"{}", TOKEN).unwrap_err().to_string();
        assert!(!message.contains("Secret to Everybody") && !message.contains("guess"));
    }

    #[test]
    fn reads_push_events() {
        let body = br#"{"ref":"refs/heads/main","after":"abc"}"#;
        let gh = headers(&[("x-github-event", "push")]);
        assert_eq!(
            event(Provider::GitHub, &gh, body),
            Ok(Event::Push {
                reference: Some("refs/heads/main".into())
            })
        );
        let ping = headers(&[("x-github-event", "ping")]);
        assert_eq!(event(Provider::GitHub, &ping, b"{}"), Ok(Event::Ping));
        let gl = headers(&[("x-gitlab-event", "Tag Push Hook")]);
        let tag = br#"{"ref":"refs/tags/v1.2.0"}"#;
        assert_eq!(
            event(Provider::GitLab, &gl, tag),
            Ok(Event::Push {
                reference: Some("refs/tags/v1.2.0".into())
            })
        );
        assert!(matches!(
            event(Provider::GitHub, &gh, b"not json"),
            Err(WebhookError::BadPayload(_))
        ));
        assert_eq!(
            event(Provider::Generic, &HeaderMap::new(), b"sync please"),
            Ok(Event::Push { reference: None })
        );
    }

    #[test]
    fn only_pushes_to_the_followed_ref_sync() {
        let main = RefRequest::Branch("main".into());
        let push = |r: &str| Event::Push {
            reference: Some(r.into()),
        };
        assert!(should_sync(&main, &push("refs/heads/main")).is_ok());
        assert!(should_sync(&main, &push("refs/heads/feature"))
            .unwrap_err()
            .contains("refs/heads/feature"));
        assert!(should_sync(&main, &Event::Push { reference: None }).is_ok());
        assert!(should_sync(&main, &Event::Ping).is_err());
        assert!(should_sync(&main, &Event::Other("issues".into())).is_err());
    }
}
