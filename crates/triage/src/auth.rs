//! Who may read and decide: users, browser sessions and API tokens.
//!
//! - A **user** has a name, a role ([`Role::Nurse`] or [`Role::Admin`]) and an argon2id
//!   password hash (a PHC string made by the web crate: the store never sees a password).
//! - A **session** is what a browser holds after signing in: a cookie with a 256-bit random
//!   token, of which only the SHA-256 is stored, and a CSRF token the session's forms carry.
//!   It ends after its idle timeout without a request, or at its absolute expiry, whichever
//!   is first; both are fixed when it is created ([`SessionLimits`]).
//! - An **API token** is what a script or an FLS system sends as `Authorization: Bearer`:
//!   256-bit random, shown once, stored as SHA-256, revocable.
//!
//! [`authenticate`] turns a request's headers into an [`Identity`], or none. A disabled
//! user's sessions and tokens stop working at once.
//!
//! Secrets come from the operating system's RNG; a token is compared by looking up its
//! SHA-256 (an index lookup on a hash of 256 random bits leaks nothing useful by timing);
//! CSRF tokens, which are compared as given, go through [`same_secret`] (constant time).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::queue::{MAX_USER_LEN, SYSTEM_USER};
use crate::store::{duration_millis, from_millis};
use crate::{Error, Result, Store};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "spinewatch_session";
/// The header a session-authenticated API request carries its CSRF token in (POST).
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The first characters of every API token (so that secret scanners can find leaked ones).
pub const TOKEN_PREFIX: &str = "swt_";
/// Random bytes in a session token, CSRF token or API token (256 bits).
pub const SECRET_BYTES: usize = 32;
/// A session's or token's last use is written at most this often (a page view is then
/// usually a read, not a write).
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Longest label of an API token.
pub const MAX_LABEL_CHARS: usize = 100;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Works the queue: worklist, cases, decisions, exports.
    Nurse,
    /// A nurse's rights and the IT status page.
    Admin,
}

impl Role {
    /// The name stored and taken on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nurse => "nurse",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that `{:<6}` lines up the CLI's lists.
        f.pad(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nurse" => Ok(Self::Nurse),
            "admin" => Ok(Self::Admin),
            _ => Err(format!("unknown role `{s}` (expected nurse or admin)")),
        }
    }
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Sign-in name (unique whatever its case).
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// When the account was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was disabled, if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
}

/// A user with their password hash, for signing in. `Debug` leaves the hash out.
#[derive(Clone)]
pub struct Credentials {
    /// The user.
    pub user: User,
    /// Their argon2id PHC string.
    pub password_hash: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Who made a request, and how they proved it.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user's row id.
    pub user_id: i64,
    /// The user's name: what decisions record.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// A session or an API token.
    pub via: Via,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// How an [`Identity`] was proved.
#[derive(Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser session, with its CSRF token.
    Session {
        /// The token its forms (or `X-CSRF-Token`) must carry.
        csrf_token: String,
    },
    /// An API token.
    Token {
        /// The token's id.
        id: i64,
    },
}

impl Identity {
    /// Whether this is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The session's CSRF token (`None` for an API token).
    pub fn csrf_token(&self) -> Option<&str> {
        match &self.via {
            Via::Session { csrf_token } => Some(csrf_token),
            Via::Token { .. } => None,
        }
    }
}

/// How long a session lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Ends after this long without a request.
    pub idle: Duration,
    /// Ends this long after sign-in, however active.
    pub max: Duration,
}

/// A session just made: the cookie's token (given to the browser, never stored) and its
/// CSRF token.
#[derive(Clone)]
pub struct NewSession {
    /// The cookie value.
    pub token: String,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// Its absolute expiry.
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An API token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Its id (`spinewatch token revoke ID`).
    pub id: i64,
    /// Whose it is.
    pub user: String,
    /// What it is for.
    pub label: Option<String>,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// When it was last used (to the minute).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// 256 random bits from the operating system, as 64 lower-case hex digits.
pub fn new_secret() -> Result<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    Ok(hex(&bytes))
}

/// SHA-256 of a secret, as stored (hex).
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether two secrets are equal, in time that depends only on their lengths.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The token of an `Authorization: Bearer` header, if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Who sent a request: an `Authorization: Bearer` token if the request has one (and only
/// it: a wrong token is not rescued by a cookie), else the session cookie.
pub fn authenticate(store: &Store, headers: &HeaderMap) -> Result<Option<Identity>> {
    if headers.contains_key(header::AUTHORIZATION) {
        return match bearer_token(headers) {
            Some(token) => store.token_identity(token),
            None => Ok(None),
        };
    }
    match cookie(headers, SESSION_COOKIE) {
        Some(token) => store.session(token),
        None => Ok(None),
    }
}

/// Checks a user name as `user add` takes it.
pub fn validate_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > MAX_USER_LEN {
        return Err(format!("the name is longer than {MAX_USER_LEN} bytes"));
    }
    if name != name.trim() {
        return Err("the name starts or ends with a space".into());
    }
    if name.chars().any(char::is_control) {
        return Err("the name contains control characters".into());
    }
    if name.eq_ignore_ascii_case(SYSTEM_USER) {
        return Err(format!("the name `{SYSTEM_USER}` is reserved"));
    }
    Ok(())
}

const USER_COLUMNS: &str = "id, name, role, created_at, disabled_at";

fn read_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, String, String, i64, Option<i64>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn user_of(raw: (i64, String, String, i64, Option<i64>)) -> Result<User> {
    let (id, name, role, created_at, disabled_at) = raw;
    let role = role.parse().map_err(|why| Error::Corrupt {
        table: "users",
        study: String::new(),
        why,
    })?;
    Ok(User {
        id,
        name,
        role,
        created_at: from_millis(created_at),
        disabled_at: disabled_at.map(from_millis),
    })
}

impl Store {
    /// Adds a user with an argon2id PHC `password_hash`.
    pub fn add_user(&self, name: &str, role: Role, password_hash: &str) -> Result<User> {
        const OP: &str = "add user";
        validate_user_name(name).map_err(Error::InvalidUser)?;
        self.write(OP, |tx, now| {
            let exists: bool = tx
                .query_row(
                    "SELECT count(*) > 0 FROM users WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .map_err(Error::sql(OP))?;
            if exists {
                return Err(Error::UserExists {
                    name: name.to_owned(),
                });
            }
            tx.execute(
                "INSERT INTO users (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![name, role.as_str(), password_hash, now],
            )
            .map_err(Error::sql(OP))?;
            Ok(User {
                id: tx.last_insert_rowid(),
                name: name.to_owned(),
                role,
                created_at: from_millis(now),
                disabled_at: None,
            })
        })
    }

    /// Replaces a user's password hash and ends their sessions.
    pub fn set_password(&self, name: &str, password_hash: &str) -> Result<()> {
        self.update_user_ending_sessions(
            "set password",
            name,
            "UPDATE users SET password_hash = ?2 WHERE id = ?1",
            |_| password_hash.to_owned().into(),
        )
    }

    /// Disables a user: they cannot sign in, and their sessions and tokens stop working.
    /// Their decisions stay.
    pub fn disable_user(&self, name: &str) -> Result<()> {
        self.update_user_ending_sessions(
            "disable user",
            name,
            "UPDATE users SET disabled_at = coalesce(disabled_at, ?2) WHERE id = ?1",
            rusqlite::types::Value::from,
        )
    }

    /// Runs `sql` on user `name` (`?1` their id, `?2` what `value` makes of the store's
    /// time) and ends their sessions, in one transaction.
    fn update_user_ending_sessions(
        &self,
        op: &'static str,
        name: &str,
        sql: &str,
        value: impl FnOnce(i64) -> rusqlite::types::Value,
    ) -> Result<()> {
        self.write(op, |tx, now| {
            let id = user_id(tx, name)?;
            tx.execute(sql, params![id, value(now)])
                .map_err(Error::sql(op))?;
            tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])
                .map_err(Error::sql(op))?;
            Ok(())
        })
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<User>> {
        let rows: Vec<_> = self
            .lock()
            .prepare(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY name COLLATE NOCASE"
            ))
            .and_then(|mut s| s.query_map([], read_user)?.collect())
            .map_err(Error::sql("list users"))?;
        rows.into_iter().map(user_of).collect()
    }

    /// A user and their password hash, by name (whatever its case), disabled or not.
    pub fn credentials(&self, name: &str) -> Result<Option<Credentials>> {
        let row = self
            .lock()
            .query_row(
                &format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE name = ?1"),
                [name],
                |r| Ok((read_user(r)?, r.get::<_, String>(5)?)),
            )
            .optional()
            .map_err(Error::sql("read credentials"))?;
        row.map(|(user, password_hash)| {
            Ok(Credentials {
                user: user_of(user)?,
                password_hash,
            })
        })
        .transpose()
    }

    /// Opens a session for user `user_id` (who must be enabled) and forgets the sessions
    /// that have ended.
    pub fn create_session(&self, user_id: i64, limits: SessionLimits) -> Result<NewSession> {
        const OP: &str = "create session";
        let token = new_secret()?;
        let csrf_token = new_secret()?;
        let idle_ms = duration_millis(limits.idle).max(1);
        let max_ms = duration_millis(limits.max);
        let expires_at = self.write(OP, |tx, now| {
            tx.execute(
                "DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen_at + idle_timeout_ms <= ?1",
                [now],
            )
            .map_err(Error::sql(OP))?;
            let enabled: bool = tx
                .query_row(
                    "SELECT count(*) > 0 FROM users WHERE id = ?1 AND disabled_at IS NULL",
                    [user_id],
                    |r| r.get(0),
                )
                .map_err(Error::sql(OP))?;
            if !enabled {
                return Err(Error::UnknownUser {
                    name: format!("#{user_id}"),
                });
            }
            let expires_at = now.saturating_add(max_ms);
            tx.execute(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at,
                     expires_at, idle_timeout_ms)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
                params![hash_secret(&token), user_id, csrf_token, now, expires_at, idle_ms],
            )
            .map_err(Error::sql(OP))?;
            Ok(expires_at)
        })?;
        Ok(NewSession {
            token,
            csrf_token,
            expires_at: from_millis(expires_at),
        })
    }

    /// The identity of a session cookie's token, if the session is live (neither idle too
    /// long nor past its expiry) and its user enabled; notes the use.
    pub fn session(&self, token: &str) -> Result<Option<Identity>> {
        const OP: &str = "check session";
        let hash = hash_secret(token);
        let touch = duration_millis(TOUCH_EVERY);
        self.write(OP, |tx, now| {
            let row: Option<(i64, String, String, String, i64, i64, i64)> = tx
                .query_row(
                    "SELECT u.id, u.name, u.role, s.csrf_token, s.last_seen_at, s.expires_at,
                         s.idle_timeout_ms
                     FROM sessions s JOIN users u ON u.id = s.user_id
                     WHERE s.token_hash = ?1 AND u.disabled_at IS NULL",
                    [&hash],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                        ))
                    },
                )
                .optional()
                .map_err(Error::sql(OP))?;
            let Some((user_id, name, role, csrf_token, last_seen, expires_at, idle)) = row else {
                return Ok(None);
            };
            if now >= expires_at || now >= last_seen.saturating_add(idle) {
                tx.execute("DELETE FROM sessions WHERE token_hash = ?1", [&hash])
                    .map_err(Error::sql(OP))?;
                return Ok(None);
            }
            if now - last_seen >= touch {
                tx.execute(
                    "UPDATE sessions SET last_seen_at = ?2 WHERE token_hash = ?1",
                    params![hash, now],
                )
                .map_err(Error::sql(OP))?;
            }
            Ok(Some(Identity {
                user_id,
                name,
                role: parse_role(&role)?,
                via: Via::Session { csrf_token },
            }))
        })
    }

    /// Ends the session of a cookie's token (sign-out); an unknown token is no error.
    pub fn end_session(&self, token: &str) -> Result<()> {
        const OP: &str = "end session";
        self.write(OP, |tx, _| {
            tx.execute(
                "DELETE FROM sessions WHERE token_hash = ?1",
                [hash_secret(token)],
            )
            .map_err(Error::sql(OP))?;
            Ok(())
        })
    }

    /// Makes an API token for `user`: its record, and the token itself, which is not
    /// stored and cannot be shown again.
    pub fn create_token(&self, user: &str, label: Option<&str>) -> Result<(ApiToken, String)> {
        const OP: &str = "create API token";
        let label = label.map(str::trim).filter(|l| !l.is_empty());
        if let Some(label) = label
            && (label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control))
        {
            return Err(Error::InvalidUser(format!(
                "the label is longer than {MAX_LABEL_CHARS} characters or has control characters"
            )));
        }
        let token = format!("{TOKEN_PREFIX}{}", new_secret()?);
        let record = self.write(OP, |tx, now| {
            let (id, name, disabled): (i64, String, Option<i64>) = tx
                .query_row(
                    "SELECT id, name, disabled_at FROM users WHERE name = ?1",
                    [user],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(Error::sql(OP))?
                .ok_or_else(|| Error::UnknownUser {
                    name: user.to_owned(),
                })?;
            if disabled.is_some() {
                return Err(Error::InvalidUser(format!("user {name} is disabled")));
            }
            tx.execute(
                "INSERT INTO api_tokens (token_hash, user_id, label, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![hash_secret(&token), id, label, now],
            )
            .map_err(Error::sql(OP))?;
            Ok(ApiToken {
                id: tx.last_insert_rowid(),
                user: name,
                label: label.map(str::to_owned),
                created_at: from_millis(now),
                revoked_at: None,
                last_used_at: None,
            })
        })?;
        Ok((record, token))
    }

    /// Every API token, oldest first.
    pub fn tokens(&self) -> Result<Vec<ApiToken>> {
        type Raw = (i64, String, Option<String>, i64, Option<i64>, Option<i64>);
        let rows: Vec<Raw> = self
            .lock()
            .prepare(
                "SELECT t.id, u.name, t.label, t.created_at, t.revoked_at, t.last_used_at
                 FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.id",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })?
                .collect()
            })
            .map_err(Error::sql("list API tokens"))?;
        Ok(rows
            .into_iter()
            .map(|(id, user, label, created, revoked, used)| ApiToken {
                id,
                user,
                label,
                created_at: from_millis(created),
                revoked_at: revoked.map(from_millis),
                last_used_at: used.map(from_millis),
            })
            .collect())
    }

    /// Revokes API token `id`; `false` when it was revoked already.
    pub fn revoke_token(&self, id: i64) -> Result<bool> {
        const OP: &str = "revoke API token";
        self.write(OP, |tx, now| {
            let revoked: Option<Option<i64>> = tx
                .query_row(
                    "SELECT revoked_at FROM api_tokens WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(Error::sql(OP))?;
            match revoked {
                None => Err(Error::UnknownToken { id }),
                Some(Some(_)) => Ok(false),
                Some(None) => {
                    tx.execute(
                        "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1",
                        params![id, now],
                    )
                    .map_err(Error::sql(OP))?;
                    Ok(true)
                }
            }
        })
    }

    /// The identity of an API token, if it is live (not revoked, its user enabled); notes
    /// the use.
    pub fn token_identity(&self, token: &str) -> Result<Option<Identity>> {
        const OP: &str = "check API token";
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let hash = hash_secret(token);
        let touch = duration_millis(TOUCH_EVERY);
        self.write(OP, |tx, now| {
            let row: Option<(i64, i64, String, String, Option<i64>)> = tx
                .query_row(
                    "SELECT t.id, u.id, u.name, u.role, t.last_used_at
                     FROM api_tokens t JOIN users u ON u.id = t.user_id
                     WHERE t.token_hash = ?1 AND t.revoked_at IS NULL
                       AND u.disabled_at IS NULL",
                    [&hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()
                .map_err(Error::sql(OP))?;
            let Some((id, user_id, name, role, last_used)) = row else {
                return Ok(None);
            };
            if last_used.is_none_or(|t| now - t >= touch) {
                tx.execute(
                    "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
                    params![id, now],
                )
                .map_err(Error::sql(OP))?;
            }
            Ok(Some(Identity {
                user_id,
                name,
                role: parse_role(&role)?,
                via: Via::Token { id },
            }))
        })
    }
}

fn user_id(tx: &rusqlite::Transaction<'_>, name: &str) -> Result<i64> {
    tx.query_row("SELECT id FROM users WHERE name = ?1", [name], |r| r.get(0))
        .optional()
        .map_err(Error::sql("find user"))?
        .ok_or_else(|| Error::UnknownUser {
            name: name.to_owned(),
        })
}

fn parse_role(role: &str) -> Result<Role> {
    role.parse().map_err(|why| Error::Corrupt {
        table: "users",
        study: String::new(),
        why,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn secrets_are_256_bit_hex_and_differ() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn same_secret_compares_whole_strings() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn cookies_and_bearer_tokens_are_read_from_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; spinewatch_session=xyz"),
        );
        headers.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer swt_1"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "spinewatch"), None);
        assert_eq!(bearer_token(&headers), Some("swt_1"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn user_names_are_checked() {
        assert!(validate_user_name("nurse.a").is_ok());
        for bad in ["", " a", "a ", "System", "a\nb", &"x".repeat(65)] {
            assert!(validate_user_name(bad).is_err(), "{bad:?}");
        }
    }
}
