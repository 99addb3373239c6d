//! Who is looking: on `kubemint ui` the user's own kubeconfig decides (the
//! caches hold only what it may list); on the operator (`--ui`) the request's
//! bearer token, checked by [`Reviewer`].

use std::sync::Arc;

use axum::http::HeaderMap;
use kube::Client;

use super::auth::{self, AuthError, Check, Reviewer, User};

/// How requests are authorized.
#[derive(Clone)]
pub enum Access {
    /// `kubemint ui`: one user, their kubeconfig's client; `secret` makes CSRF tokens.
    Local {
        /// The user's client, for actions.
        client: Client,
        /// CSRF secret of this process.
        secret: Arc<[u8; 32]>,
    },
    /// The operator: tokens reviewed by the API server.
    Kubernetes(Arc<Reviewer>),
}

impl Access {
    /// Local access with `client` and a fresh CSRF secret.
    pub fn local(client: Client) -> Access {
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).expect("the OS random source");
        Access::Local {
            client,
            secret: Arc::new(secret),
        }
    }

    /// The operator's access: TokenReview and SubjectAccessReview with `client`.
    pub fn kubernetes(client: Client) -> Access {
        Access::Kubernetes(Reviewer::new(client))
    }

    /// The client actions are made with (after they are authorized).
    pub fn client(&self) -> &Client {
        match self {
            Access::Local { client, .. } => client,
            Access::Kubernetes(r) => r.client(),
        }
    }

    fn secret(&self) -> &[u8] {
        match self {
            Access::Local { secret, .. } => secret.as_slice(),
            Access::Kubernetes(r) => r.secret(),
        }
    }
}

/// The outcome of looking at a request's credentials.
pub enum Identified {
    /// Who it is.
    Viewer(Box<Viewer>),
    /// No token: the sign-in page.
    Anonymous,
    /// A token the API server does not accept.
    Rejected,
}

/// Someone allowed in, and what they may do is asked per namespace.
#[derive(Clone)]
pub struct Viewer {
    access: Access,
    who: Option<(User, String)>,
}

impl Viewer {
    /// Identifies the sender of `headers`.
    pub async fn identify(access: &Access, headers: &HeaderMap) -> Result<Identified, AuthError> {
        let Access::Kubernetes(reviewer) = access else {
            return Ok(Identified::Viewer(Box::new(Viewer {
                access: access.clone(),
                who: None,
            })));
        };
        let Some(token) = auth::token(headers) else {
            return Ok(Identified::Anonymous);
        };
        Ok(match reviewer.authenticate(&token).await? {
            Some(user) => Identified::Viewer(Box::new(Viewer {
                access: access.clone(),
                who: Some((user, token)),
            })),
            None => Identified::Rejected,
        })
    }

    /// Whether the viewer may `verb` channels in `namespace`.
    pub async fn may(&self, verb: &str, namespace: &str) -> Result<bool, AuthError> {
        self.may_do(&Check::channels(verb, namespace)).await
    }

    /// Whether the viewer may do what `check` says (locally: the API server
    /// decides when the action is made with the user's own client).
    pub async fn may_do(&self, check: &Check<'_>) -> Result<bool, AuthError> {
        match (&self.access, &self.who) {
            (Access::Kubernetes(reviewer), Some((user, _))) => reviewer.allowed(user, check).await,
            _ => Ok(true),
        }
    }

    /// The user's name, when signed in.
    pub fn name(&self) -> Option<&str> {
        self.who.as_ref().map(|(u, _)| u.name.as_str())
    }

    /// Whether the viewer signed in through the page (and can sign out).
    pub fn signed_in(&self) -> bool {
        self.who.is_some()
    }

    /// The CSRF token of this viewer's forms.
    pub fn csrf(&self) -> String {
        let token = self.who.as_ref().map_or("local", |(_, t)| t.as_str());
        auth::csrf_token(self.access.secret(), token)
    }

    /// Whether `given` is this viewer's CSRF token.
    pub fn csrf_valid(&self, given: &str) -> bool {
        let token = self.who.as_ref().map_or("local", |(_, t)| t.as_str());
        auth::csrf_valid(self.access.secret(), token, given)
    }
}
