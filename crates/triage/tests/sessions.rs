//! Users and sessions: a session ends after its idle timeout or at its absolute expiry,
//! on sign-out, on a password change and when its user is disabled; names are unique
//! whatever their case; nothing secret is stored in the clear.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use spinewatch_triage::auth::{Via, hash_secret};
use spinewatch_triage::{Error, Role, SessionLimits};

const LIMITS: SessionLimits = SessionLimits {
    idle: Duration::from_secs(30 * 60),
    max: Duration::from_secs(8 * 3600),
};

#[test]
fn a_session_ends_when_idle_too_long() {
    let (store, clock) = common::store();
    let user = store
        .add_user("nurse.a", Role::Nurse, "$argon2id$x")
        .unwrap();
    let session = store.create_session(user.id, LIMITS).unwrap();
    let identity = store.session(&session.token).unwrap().unwrap();
    assert_eq!(identity.name, "nurse.a");
    assert_eq!(identity.role, Role::Nurse);
    assert!(
        matches!(identity.via, Via::Session { ref csrf_token } if *csrf_token == session.csrf_token)
    );

    // Used every 29 minutes, it lives on...
    for _ in 0..4 {
        clock.advance(Duration::from_secs(29 * 60));
        assert!(store.session(&session.token).unwrap().is_some());
    }
    // ...30 minutes without a request end it.
    clock.advance(Duration::from_secs(30 * 60));
    assert!(store.session(&session.token).unwrap().is_none());
    assert!(store.session(&session.token).unwrap().is_none());
}

#[test]
fn a_session_ends_at_its_absolute_expiry_however_active() {
    let (store, clock) = common::store();
    let user = store
        .add_user("nurse.a", Role::Nurse, "$argon2id$x")
        .unwrap();
    let session = store.create_session(user.id, LIMITS).unwrap();
    for _ in 0..(8 * 60 / 20 - 1) {
        clock.advance(Duration::from_secs(20 * 60));
        assert!(store.session(&session.token).unwrap().is_some());
    }
    clock.advance(Duration::from_secs(20 * 60));
    assert!(store.session(&session.token).unwrap().is_none());
}

#[test]
fn sign_out_password_change_and_disabling_end_sessions() {
    let (store, _clock) = common::store();
    let user = store
        .add_user("nurse.a", Role::Admin, "$argon2id$x")
        .unwrap();
    let a = store.create_session(user.id, LIMITS).unwrap();
    let b = store.create_session(user.id, LIMITS).unwrap();
    let c = store.create_session(user.id, LIMITS).unwrap();
    store.end_session(&a.token).unwrap();
    assert!(store.session(&a.token).unwrap().is_none());
    assert!(store.session(&b.token).unwrap().unwrap().is_admin());

    store.set_password("NURSE.A", "$argon2id$y").unwrap();
    assert!(store.session(&b.token).unwrap().is_none());
    assert!(store.session(&c.token).unwrap().is_none());
    assert_eq!(
        store.credentials("nurse.a").unwrap().unwrap().password_hash,
        "$argon2id$y"
    );

    let d = store.create_session(user.id, LIMITS).unwrap();
    let (_, token) = store.create_token("nurse.a", None).unwrap();
    assert!(store.token_identity(&token).unwrap().is_some());
    store.disable_user("nurse.a").unwrap();
    assert!(store.session(&d.token).unwrap().is_none());
    assert!(store.token_identity(&token).unwrap().is_none());
    assert!(store.create_session(user.id, LIMITS).is_err());
    assert!(store.users().unwrap()[0].disabled_at.is_some());
}

#[test]
fn names_are_unique_whatever_their_case_and_system_is_reserved() {
    let (store, _clock) = common::store();
    store
        .add_user("Nurse.A", Role::Nurse, "$argon2id$x")
        .unwrap();
    assert!(matches!(
        store.add_user("nurse.a", Role::Admin, "$argon2id$x"),
        Err(Error::UserExists { .. })
    ));
    assert!(matches!(
        store.add_user("system", Role::Admin, "$argon2id$x"),
        Err(Error::InvalidUser(_))
    ));
    assert!(matches!(
        store.create_token("nobody", None),
        Err(Error::UnknownUser { .. })
    ));
    assert!(matches!(
        store.revoke_token(99),
        Err(Error::UnknownToken { id: 99 })
    ));
}

#[test]
fn only_hashes_of_session_and_api_tokens_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sqlite3");
    let store = spinewatch_triage::Store::open(&path).unwrap();
    let user = store
        .add_user("nurse.a", Role::Nurse, "$argon2id$x")
        .unwrap();
    let session = store.create_session(user.id, LIMITS).unwrap();
    let (record, token) = store.create_token("nurse.a", Some("FLS register")).unwrap();
    assert!(
        token.starts_with("swt_") && token.len() == 4 + 64,
        "{token}"
    );
    assert_eq!(record.label.as_deref(), Some("FLS register"));
    drop(store);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let stored: Vec<String> = raw
        .prepare("SELECT token_hash FROM sessions UNION ALL SELECT token_hash FROM api_tokens")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stored, [hash_secret(&session.token), hash_secret(&token)]);
    let bytes = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(&session.token) && !text.contains(&token[4..]));
}
