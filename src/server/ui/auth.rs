//! Who may see what, when the operator serves the UI to a team (`--ui`): a
//! Kubernetes bearer token (from the sign-in page's cookie, or `Authorization`
//! from an auth proxy) checked with a TokenReview, and every view and action
//! authorized with a SubjectAccessReview. Results are cached briefly, keyed by
//! a digest of the token; the token itself is never logged or shown.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use hmac::{Hmac, Mac};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use kube::Client;
use sha2::{Digest, Sha256};

use crate::api::GROUP;

/// The sign-in cookie.
pub const COOKIE: &str = "kubemint_token";

/// How long a TokenReview or SubjectAccessReview answer is reused: a revoked
/// token or binding takes effect within this.
pub const TTL: Duration = Duration::from_secs(10);

/// How long the sign-in cookie lives.
const SESSION_SECONDS: u64 = 8 * 3600;

/// Why a request could not be checked (not: that it was refused).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The API server did not answer a review.
    #[error("the {review} could not be made: {message}")]
    Review {
        /// `TokenReview` or `SubjectAccessReview`.
        review: &'static str,
        /// The API server's message (never contains the token).
        message: String,
    },
}

/// An authenticated user, as the TokenReview named them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// User name.
    pub name: String,
    /// UID.
    pub uid: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra attributes, passed on to SubjectAccessReviews.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The bearer token of a request: `Authorization: Bearer`, else the cookie.
pub fn token(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if let Some(t) = bearer {
        return Some(t.to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|t| !t.is_empty())
}

/// Whether the request carried its token in `Authorization` (a proxy or a
/// script), not in the cookie a browser adds by itself.
pub fn from_header(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION)
}

/// `Set-Cookie` for a signed-in session (`None`: signing out). HttpOnly, so
/// no script reads it; SameSite=Strict, so no other site's page sends it.
pub fn session_cookie(token: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match token {
        Some(t) => format!(
            "{COOKIE}={t}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}{secure}"
        ),
        None => format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// Whether a state-changing request comes from the UI's own pages: a browser
/// says where a request comes from (`Sec-Fetch-Site`, `Origin`); a request from
/// elsewhere is refused whatever its token. Without either header (no
/// browser), only a token in `Authorization` is accepted, since a cookie is
/// what a forged cross-site request would ride on.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    match (get("origin"), get("host")) {
        (Some(origin), Some(host)) => {
            let origin_host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .unwrap_or("");
            origin_host == host
        }
        (Some(_), None) => false,
        (None, _) => get("sec-fetch-site").is_some() || from_header(headers),
    }
}

/// The CSRF token of the forms of a session: a MAC of its bearer token, so it
/// is worthless without the cookie and reveals nothing of it.
pub fn csrf_token(secret: &[u8], token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(b"kubemint-ui-csrf\0");
    mac.update(token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `given` is the CSRF token of `token` (in constant time).
pub fn csrf_valid(secret: &[u8], token: &str, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    let want = csrf_token(secret, token);
    want.len() == given.len() && bool::from(want.as_bytes().ct_eq(given.as_bytes()))
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

type Decision = (String, String); // (user name and groups, the check)

/// One thing to ask a SubjectAccessReview about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check<'a> {
    /// API group, empty for the core group.
    pub group: &'a str,
    /// Resource, e.g. `channels`.
    pub resource: &'a str,
    /// Verb, e.g. `get`.
    pub verb: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// One object's name, when the check is about one.
    pub name: Option<&'a str>,
}

impl<'a> Check<'a> {
    /// `verb` on channels in `namespace`.
    pub fn channels(verb: &'a str, namespace: &'a str) -> Check<'a> {
        Check {
            group: GROUP,
            resource: "channels",
            verb,
            namespace,
            name: None,
        }
    }

    fn key(&self) -> String {
        format!(
            "{}\0{}\0{}\0{}\0{}",
            self.group,
            self.resource,
            self.verb,
            self.namespace,
            self.name.unwrap_or_default()
        )
    }
}
/// A TokenReview's answer (`None`: not authenticated) and when it came.
type Reviewed = (Instant, Option<User>);

/// TokenReviews and SubjectAccessReviews with the operator's client, cached for [`TTL`].
pub struct Reviewer {
    client: Client,
    secret: [u8; 32],
    users: Mutex<HashMap<[u8; 32], Reviewed>>,
    decisions: Mutex<HashMap<Decision, (Instant, bool)>>,
}

impl Reviewer {
    /// A reviewer using `client` (which needs `create` on tokenreviews and
    /// subjectaccessreviews), with a fresh CSRF secret.
    pub fn new(client: Client) -> Arc<Reviewer> {
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).expect("the OS random source");
        Arc::new(Reviewer {
            client,
            secret,
            users: Mutex::default(),
            decisions: Mutex::default(),
        })
    }

    /// The operator's client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The secret CSRF tokens are made with.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// Who `token` belongs to; `None` when the API server does not accept it.
    pub async fn authenticate(&self, token: &str) -> Result<Option<User>, AuthError> {
        let key = digest(token);
        if let Some((at, user)) = self.users.lock().unwrap().get(&key) {
            if at.elapsed() < TTL {
                return Ok(user.clone());
            }
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: None,
            },
            ..Default::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthError::Review {
                review: "TokenReview",
                message: crate::cluster::api_message(&e),
            })?;
        let user = answer
            .status
            .filter(|s| s.authenticated == Some(true))
            .and_then(|s| s.user)
            .and_then(|u| {
                Some(User {
                    name: u.username?,
                    uid: u.uid,
                    groups: u.groups.unwrap_or_default(),
                    extra: u.extra.unwrap_or_default(),
                })
            });
        let mut users = self.users.lock().unwrap();
        users.retain(|_, (at, _)| at.elapsed() < TTL);
        users.insert(key, (Instant::now(), user.clone()));
        Ok(user)
    }

    /// Whether `user` may do what `check` says.
    pub async fn allowed(&self, user: &User, check: &Check<'_>) -> Result<bool, AuthError> {
        let who = format!("{}\0{}", user.name, user.groups.join("\0"));
        let key = (who, check.key());
        if let Some((at, allowed)) = self.decisions.lock().unwrap().get(&key) {
            if at.elapsed() < TTL {
                return Ok(*allowed);
            }
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: user.uid.clone(),
                groups: Some(user.groups.clone()),
                extra: Some(user.extra.clone()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(check.group.to_string()),
                    resource: Some(check.resource.to_string()),
                    verb: Some(check.verb.to_string()),
                    namespace: Some(check.namespace.to_string()),
                    name: check.name.map(str::to_string),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthError::Review {
                review: "SubjectAccessReview",
                message: crate::cluster::api_message(&e),
            })?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        let mut decisions = self.decisions.lock().unwrap();
        decisions.retain(|_, (at, _)| at.elapsed() < TTL);
        decisions.insert(key, (Instant::now(), allowed));
        Ok(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    type Headers<'a> = &'a [(&'static str, &'a str)];

    fn headers(pairs: Headers) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_token_comes_from_authorization_then_the_cookie() {
        let cases: [(Headers, Option<&str>); 5] = [
            (&[("authorization", "Bearer abc")], Some("abc")),
            (&[("cookie", "a=1; kubemint_token=xyz; b=2")], Some("xyz")),
            (
                &[
                    ("authorization", "Bearer abc"),
                    ("cookie", "kubemint_token=xyz"),
                ],
                Some("abc"),
            ),
            (
                &[("authorization", "Basic abc"), ("cookie", "other=1")],
                None,
            ),
            (&[("cookie", "kubemint_token=")], None),
        ];
        for (pairs, want) in cases {
            assert_eq!(token(&headers(pairs)).as_deref(), want, "{pairs:?}");
        }
    }

    #[test]
    fn only_same_origin_requests_may_change_anything() {
        let cases: [(Headers, bool); 7] = [
            (
                &[
                    ("origin", "http://127.0.0.1:8080"),
                    ("host", "127.0.0.1:8080"),
                ],
                true,
            ),
            (
                &[
                    ("sec-fetch-site", "same-origin"),
                    ("origin", "https://ui.example"),
                    ("host", "ui.example"),
                ],
                true,
            ),
            (
                &[
                    ("origin", "http://evil.example"),
                    ("host", "127.0.0.1:8080"),
                ],
                false,
            ),
            (
                &[("sec-fetch-site", "cross-site"), ("host", "127.0.0.1:8080")],
                false,
            ),
            (
                &[
                    ("sec-fetch-site", "same-site"),
                    ("origin", "http://a.ui.example"),
                    ("host", "ui.example"),
                ],
                false,
            ),
            // No browser: only with the token in Authorization, never the cookie alone.
            (
                &[("cookie", "kubemint_token=x"), ("host", "ui.example")],
                false,
            ),
            (
                &[("authorization", "Bearer x"), ("host", "ui.example")],
                true,
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(same_origin(&headers(pairs)), want, "{pairs:?}");
        }
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let secret = [7u8; 32];
        let t = csrf_token(&secret, "token-a");
        assert!(csrf_valid(&secret, "token-a", &t));
        assert!(!csrf_valid(&secret, "token-b", &t));
        assert!(!csrf_valid(&[8u8; 32], "token-a", &t));
        assert!(!csrf_valid(&secret, "token-a", ""));
        assert!(!t.contains("token-a"));
    }

    #[test]
    fn the_cookie_is_http_only_and_same_site() {
        let c = session_cookie(Some("t"), false);
        assert!(
            c.starts_with("kubemint_token=t;")
                && c.contains("HttpOnly")
                && c.contains("SameSite=Strict")
        );
        assert!(session_cookie(None, true).contains("Max-Age=0; Secure"));
    }
}
