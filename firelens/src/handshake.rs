//! The optional `shared_key` handshake of the forward protocol, sans-I/O.
//!
//! Server: `["HELO", {"nonce": <16 random bytes>, "auth": "", "keepalive": true}]`.
//! Client: `["PING", hostname, salt, hex(sha512(salt + hostname + nonce + key)), user, pass]`.
//! Server: `["PONG", true, "", server_hostname, hex(sha512(salt + server_hostname + nonce + key))]`,
//! or `["PONG", false, reason, "", ""]` and the connection is closed.
//! (fluent/fluentd `lib/fluent/plugin/in_forward.rb`; shared/specs.md §5.)
//! With users (Fluent Bit's `security.users`), `auth` is a random salt and
//! the PING's last two fields must be a user's name and
//! `hex(sha512(auth + user + password))`, as in_forward's `fw_prot.c`
//! checks them; without, `auth` is empty and the credentials are not read.

use std::sync::Arc;

use sha2::{Digest, Sha512};

use crate::msgpack::{self, Value};

/// One connection's handshake state: the key, the users, our name, and the
/// nonce and user salt sent.
#[derive(Clone)]
pub struct Handshake {
    shared_key: String,
    users: Arc<[ForwardUser]>,
    server_hostname: String,
    nonce: [u8; 16],
    auth_salt: [u8; 16],
}

/// A name and password a client must give (`security.users`).
#[derive(Clone, PartialEq, Eq)]
pub struct ForwardUser {
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for ForwardUser {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Handshake {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("server_hostname", &self.server_hostname)
            .finish_non_exhaustive()
    }
}

/// Why a PING was refused; the text goes into the PONG and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    NotAPing,
    SharedKeyMismatch,
    UserMismatch,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NotAPing => "expected a PING",
            Refusal::SharedKeyMismatch => "shared_key mismatch",
            Refusal::UserMismatch => "username/password mismatch",
        }
    }
}

impl Handshake {
    /// `nonce` must be fresh random bytes for every connection.
    pub fn new(shared_key: &str, server_hostname: &str, nonce: [u8; 16]) -> Handshake {
        Handshake {
            shared_key: shared_key.to_string(),
            users: Arc::from([]),
            server_hostname: server_hostname.to_string(),
            nonce,
            auth_salt: [0; 16],
        }
    }

    /// Clients must also give one of `users`' names and passwords;
    /// `auth_salt` must be fresh random bytes for every connection.
    pub fn with_users(mut self, users: Arc<[ForwardUser]>, auth_salt: [u8; 16]) -> Handshake {
        self.users = users;
        self.auth_salt = auth_salt;
        self
    }

    /// The HELO the server sends first.
    pub fn helo(&self) -> Vec<u8> {
        let mut out = vec![0x92];
        msgpack::write_str(&mut out, b"HELO");
        out.push(0x83);
        msgpack::write_str(&mut out, b"nonce");
        out.extend_from_slice(&[0xc4, 16]);
        out.extend_from_slice(&self.nonce);
        msgpack::write_str(&mut out, b"auth");
        if self.users.is_empty() {
            msgpack::write_str(&mut out, b"");
        } else {
            msgpack::write_str(&mut out, &self.auth_salt);
        }
        msgpack::write_str(&mut out, b"keepalive");
        out.push(0xc3);
        out
    }

    /// Checks the client's PING; returns the PONG to send and whether the
    /// client may go on.
    pub fn answer(&self, ping: &Value<'_>) -> (Vec<u8>, Result<(), Refusal>) {
        let verdict = self.verify(ping);
        let mut out = vec![0x95];
        msgpack::write_str(&mut out, b"PONG");
        match verdict {
            Ok(salt) => {
                out.push(0xc3);
                msgpack::write_str(&mut out, b"");
                msgpack::write_str(&mut out, self.server_hostname.as_bytes());
                let digest = self.digest(salt, self.server_hostname.as_bytes());
                msgpack::write_str(&mut out, digest.as_bytes());
                (out, Ok(()))
            }
            Err(refusal) => {
                out.push(0xc2);
                msgpack::write_str(&mut out, refusal.reason().as_bytes());
                msgpack::write_str(&mut out, b"");
                msgpack::write_str(&mut out, b"");
                (out, Err(refusal))
            }
        }
    }

    /// The PING's salt when its digest proves the shared key.
    fn verify<'v>(&self, ping: &Value<'v>) -> Result<&'v [u8], Refusal> {
        let Value::Array(items) = ping else {
            return Err(Refusal::NotAPing);
        };
        let field = |i: usize| items.get(i).and_then(Value::as_bytes);
        if field(0) != Some(b"PING") {
            return Err(Refusal::NotAPing);
        }
        let (Some(hostname), Some(salt), Some(digest)) = (field(1), field(2), field(3)) else {
            return Err(Refusal::NotAPing);
        };
        if !same_digest(&self.digest(salt, hostname), digest) {
            return Err(Refusal::SharedKeyMismatch);
        }
        if self.users.is_empty() {
            return Ok(salt);
        }
        let (Some(name), Some(password_digest)) = (field(4), field(5)) else {
            return Err(Refusal::UserMismatch);
        };
        let known = self.users.iter().any(|user| {
            user.name.as_bytes() == name
                && same_digest(&self.password_digest(user), password_digest)
        });
        if known {
            Ok(salt)
        } else {
            Err(Refusal::UserMismatch)
        }
    }

    /// hex(sha512(auth_salt + name + password)).
    fn password_digest(&self, user: &ForwardUser) -> String {
        let mut sha = Sha512::new();
        sha.update(self.auth_salt);
        sha.update(user.name.as_bytes());
        sha.update(user.password.as_bytes());
        sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// hex(sha512(salt + hostname + nonce + shared_key)).
    fn digest(&self, salt: &[u8], hostname: &[u8]) -> String {
        let mut sha = Sha512::new();
        sha.update(salt);
        sha.update(hostname);
        sha.update(self.nonce);
        sha.update(self.shared_key.as_bytes());
        sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Whether a digest a client sent is `expected`, compared in constant time
/// (the digest is derived from a secret).
fn same_digest(expected: &str, sent: &[u8]) -> bool {
    expected.len() == sent.len()
        && expected
            .bytes()
            .zip(sent)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack;

    fn ping(hostname: &str, salt: &str, key: &str, nonce: &[u8]) -> Vec<u8> {
        let mut sha = Sha512::new();
        sha.update(salt);
        sha.update(hostname);
        sha.update(nonce);
        sha.update(key);
        let digest: String = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let mut out = vec![0x96];
        for s in ["PING", hostname, salt, &digest, "", ""] {
            msgpack::write_str(&mut out, s.as_bytes());
        }
        out
    }

    #[test]
    fn helo_carries_the_nonce() {
        let hs = Handshake::new("k", "sluice", [7; 16]);
        let bytes = hs.helo();
        let (helo, _) = msgpack::read(&bytes).unwrap();
        let Value::Array(items) = helo else { panic!() };
        assert_eq!(items[0].as_str(), Some("HELO"));
        assert_eq!(
            items[1].get("nonce").and_then(Value::as_bytes),
            Some(&[7u8; 16][..])
        );
        assert_eq!(items[1].get("keepalive"), Some(&Value::Bool(true)));
    }

    #[test]
    fn right_key_gets_a_proving_pong() {
        let hs = Handshake::new("secret", "sluice", [1; 16]);
        let bytes = ping("client", "saltsaltsaltsalt", "secret", &[1; 16]);
        let (value, _) = msgpack::read(&bytes).unwrap();
        let (pong_bytes, verdict) = hs.answer(&value);
        assert_eq!(verdict, Ok(()));
        let (pong, _) = msgpack::read(&pong_bytes).unwrap();
        let Value::Array(items) = pong else { panic!() };
        assert_eq!(items[0].as_str(), Some("PONG"));
        assert_eq!(items[1], Value::Bool(true));
        assert_eq!(items[3].as_str(), Some("sluice"));
        // The server proves it knows the key too.
        assert_eq!(items[4].as_str().map(str::len), Some(128));
        assert_eq!(
            items[4].as_str().map(String::from),
            Some(hs.digest(b"saltsaltsaltsalt", b"sluice"))
        );
    }

    #[test]
    fn wrong_key_or_no_ping_is_refused() {
        let hs = Handshake::new("secret", "sluice", [1; 16]);
        let bytes = ping("client", "salt", "wrong", &[1; 16]);
        let (value, _) = msgpack::read(&bytes).unwrap();
        let (pong_bytes, verdict) = hs.answer(&value);
        assert_eq!(verdict, Err(Refusal::SharedKeyMismatch));
        let (pong, _) = msgpack::read(&pong_bytes).unwrap();
        let Value::Array(items) = pong else { panic!() };
        assert_eq!(items[1], Value::Bool(false));
        assert_eq!(items[2].as_str(), Some("shared_key mismatch"));
        let (value, _) = msgpack::read(b"\x93\xa1t\x01\x80").unwrap();
        assert_eq!(hs.answer(&value).1, Err(Refusal::NotAPing));
        assert!(!format!("{hs:?}").contains("secret"));
    }

    /// A PING with a user's name and `hex(sha512(auth + name + password))`
    /// in its last fields, as Fluent Bit's forward output sends them.
    fn user_ping(key: &str, nonce: &[u8], name: &str, password: &str, auth: &[u8]) -> Vec<u8> {
        let mut sha = Sha512::new();
        sha.update(auth);
        sha.update(name);
        sha.update(password);
        let digest: String = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let mut out = ping("client", "salt", key, nonce);
        // The last two (empty) fields become the user's.
        out.truncate(out.len() - 2);
        msgpack::write_str(&mut out, name.as_bytes());
        msgpack::write_str(&mut out, digest.as_bytes());
        out
    }

    #[test]
    fn users_must_give_their_password() {
        let users: Arc<[ForwardUser]> = Arc::from([ForwardUser {
            name: "alice".into(),
            password: "pa ss".into(),
        }]);
        let hs = Handshake::new("secret", "sluice", [1; 16]).with_users(users, [9; 16]);
        let helo_bytes = hs.helo();
        let (helo, _) = msgpack::read(&helo_bytes).unwrap();
        let Value::Array(items) = helo else { panic!() };
        assert_eq!(
            items[1].get("auth").and_then(Value::as_bytes),
            Some(&[9u8; 16][..])
        );
        let verdict = |bytes: Vec<u8>| {
            let (value, _) = msgpack::read(&bytes).unwrap();
            hs.answer(&value).1
        };
        let nonce = [1u8; 16];
        assert_eq!(
            verdict(user_ping("secret", &nonce, "alice", "pa ss", &[9; 16])),
            Ok(())
        );
        for (key, name, password) in [
            ("secret", "alice", "wrong"),
            ("secret", "bob", "pa ss"),
            ("secret", "", ""),
        ] {
            assert_eq!(
                verdict(user_ping(key, &nonce, name, password, &[9; 16])),
                Err(Refusal::UserMismatch),
                "{name} {password}"
            );
        }
        // The shared key is checked first.
        assert_eq!(
            verdict(user_ping("wrong", &nonce, "alice", "pa ss", &[9; 16])),
            Err(Refusal::SharedKeyMismatch)
        );
        // A digest over another salt does not pass.
        assert_eq!(
            verdict(user_ping("secret", &nonce, "alice", "pa ss", &[8; 16])),
            Err(Refusal::UserMismatch)
        );
        assert!(!format!("{hs:?}").contains("pa ss"));
    }
}
