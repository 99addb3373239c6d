//! Whether an OpenPGP key may have made a signature, GnuPG-like: the key
//! (primary or subkey) must carry the signing flag, must not have expired when
//! the signature was made, and must not be revoked. The cryptographic checks of
//! the self-signatures were done when the keys were read
//! (`SignedPublicKey::verify_bindings`); this module only reads what they say.
//!
//! Expiry is judged at the signature's creation time: a key that has expired
//! since still vouches for what it signed while valid (history already
//! delivered stays deliverable), but a signature made now by an expired key is
//! refused. The signer chooses that time, so a leaked key must be revoked, not
//! left to expire: a hard revocation (no reason, or "compromised") refuses every
//! signature of the key; a soft one ("superseded", "retired") refuses those made
//! from the revocation on.

use pgp::composed::{SignedPublicKey, SignedPublicSubKey};
use pgp::packet::{RevocationCode, Signature, SignatureType, SubpacketData};
use pgp::types::KeyDetails;

/// Why a key that made a (cryptographically valid) signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    /// The key's self-signature gives it an expiry before the signature's time.
    #[error("the key expired at {at}, before the signature was made ({signed})")]
    Expired {
        /// When the key expired (RFC 3339).
        at: String,
        /// When the signature was made (RFC 3339).
        signed: String,
    },
    /// A revocation signature covers the signature.
    #[error("the key is revoked ({reason})")]
    Revoked {
        /// The revocation's reason, and from when it applies for soft revocations.
        reason: String,
    },
    /// The key flags of its newest self-signature do not include signing.
    #[error("it is not a signing key (its key flags do not allow signing data)")]
    NotSigning,
    /// The signature claims a time before the key existed.
    #[error("the signature ({signed}) is dated before the key was created ({created})")]
    BeforeCreation {
        /// The signature's time (RFC 3339).
        signed: String,
        /// The key's creation time (RFC 3339).
        created: String,
    },
}

/// Which key of a certificate made the signature.
#[derive(Debug, Clone, Copy)]
pub enum Signer<'k> {
    /// The primary key.
    Primary,
    /// One of its subkeys.
    Subkey(&'k SignedPublicSubKey),
}

/// Whether `signer` of `cert` could make a signature at `signed` (Unix seconds).
pub fn usable_at(
    cert: &SignedPublicKey,
    signer: Signer<'_>,
    signed: u32,
) -> Result<(), KeyProblem> {
    // A subkey is only as good as its primary: a revoked or expired primary
    // takes its subkeys with it (its flags do not matter for them).
    let primary = primary_binding(cert);
    check_alive(
        cert.primary_key.created_at().as_secs(),
        primary,
        &cert.details.revocation_signatures,
        signed,
    )?;
    match signer {
        Signer::Primary => check_flags(primary),
        Signer::Subkey(sub) => {
            let binding = newest(
                sub.signatures
                    .iter()
                    .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding)),
            );
            let revocations: Vec<Signature> = sub
                .signatures
                .iter()
                .filter(|s| s.typ() == Some(SignatureType::SubkeyRevocation))
                .cloned()
                .collect();
            check_alive(
                sub.key.created_at().as_secs(),
                binding,
                &revocations,
                signed,
            )?;
            check_flags(binding)
        }
    }
}

/// The self-signature that describes the primary key: the newest user ID
/// self-certification (where GnuPG writes flags and expiry), else the newest
/// direct-key signature.
fn primary_binding(cert: &SignedPublicKey) -> Option<&Signature> {
    let certifications = cert
        .details
        .users
        .iter()
        .flat_map(|u| u.signatures.iter())
        .filter(|s| s.is_certification() && s.typ() != Some(SignatureType::CertRevocation));
    newest(certifications).or_else(|| newest(cert.details.direct_signatures.iter()))
}

fn newest<'s>(signatures: impl Iterator<Item = &'s Signature>) -> Option<&'s Signature> {
    signatures.max_by_key(|s| s.created().map(|t| t.as_secs()).unwrap_or(0))
}

fn check_alive(
    created: u32,
    binding: Option<&Signature>,
    revocations: &[Signature],
    signed: u32,
) -> Result<(), KeyProblem> {
    if signed < created {
        return Err(KeyProblem::BeforeCreation {
            signed: rfc3339(signed),
            created: rfc3339(created),
        });
    }
    for revocation in revocations {
        let code = revocation.revocation_reason_code();
        let soft = matches!(
            code,
            Some(RevocationCode::KeySuperseded | RevocationCode::KeyRetired)
        );
        let since = revocation.created().map(|t| t.as_secs()).unwrap_or(0);
        let reason = match code {
            Some(RevocationCode::KeySuperseded) => "superseded",
            Some(RevocationCode::KeyRetired) => "retired",
            Some(RevocationCode::KeyCompromised) => "compromised",
            _ => "no reason given",
        };
        if !soft {
            return Err(KeyProblem::Revoked {
                reason: reason.to_string(),
            });
        }
        if signed >= since {
            return Err(KeyProblem::Revoked {
                reason: format!("{reason} since {}", rfc3339(since)),
            });
        }
    }
    // Zero means "never", as does no expiry at all.
    let lifetime = binding
        .and_then(Signature::key_expiration_time)
        .map(|d| d.as_secs())
        .filter(|&d| d > 0);
    if let Some(lifetime) = lifetime {
        let expires = created.saturating_add(lifetime);
        if signed >= expires {
            return Err(KeyProblem::Expired {
                at: rfc3339(expires),
                signed: rfc3339(signed),
            });
        }
    }
    Ok(())
}

/// Without a key flags subpacket (old v4 keys), any use the algorithm allows is
/// permitted, as GnuPG does; every algorithm that verifies signatures signs.
fn check_flags(binding: Option<&Signature>) -> Result<(), KeyProblem> {
    let has_flags = binding.and_then(Signature::config).is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
    });
    match binding {
        Some(sig) if has_flags && !sig.key_flags().sign() => Err(KeyProblem::NotSigning),
        _ => Ok(()),
    }
}

fn rfc3339(secs: u32) -> String {
    k8s_openapi::jiff::Timestamp::from_second(i64::from(secs))
        .map(|t| t.to_string())
        .unwrap_or_else(|_| secs.to_string())
}
