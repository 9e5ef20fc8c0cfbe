//! `--key FILE` (or `ZCLAB_KEY`): a secret both ends share.
//!
//! Without a key, anyone who reaches the receiver's port can send it a
//! file, and anyone on the path could change the data and the hash alike.
//! With one, the handshake is a mutual challenge and response with keyed
//! BLAKE3, and the final check compares keyed hashes under a key of this
//! session only:
//!
//! ```text
//! sender   -> Hello { ..., nonce: Ns }
//! receiver -> Challenge { nonce: Nr, proof: MAC(k, "receiver" | Ns | Nr | hello) }   the receiver knows k
//! sender   -> Proof { proof: MAC(k, "sender" | Nr | Ns | hello) }                    the sender knows k
//! both:       session key = MAC(k, "session" | Ns | Nr); file hash = BLAKE3 keyed with it
//! ```
//!
//! `k` is derived from the file's bytes (`blake3::derive_key`), so any
//! file of random bytes will do. A wrong key fails the handshake: the
//! receiver refuses before it creates any file. Proofs are compared in
//! constant time (`blake3::Hash`'s `==`).

use std::path::Path;

/// The key both ends derive from the key file.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// The key file must hold at least this many bytes.
pub const MIN_KEY_BYTES: usize = 16;

impl Key {
    /// Reads and derives the key from `path`.
    pub fn from_file(path: &Path) -> anyhow::Result<Key> {
        use anyhow::Context;
        let bytes = std::fs::read(path).with_context(|| format!("cannot read the key file {}", path.display()))?;
        Key::from_bytes(&bytes).with_context(|| format!("key file {}", path.display()))
    }

    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Key> {
        if bytes.len() < MIN_KEY_BYTES {
            anyhow::bail!(
                "a key needs at least {MIN_KEY_BYTES} bytes of secret (this one has {}); make one with `head -c 32 /dev/urandom > KEYFILE`",
                bytes.len()
            );
        }
        Ok(Key(blake3::derive_key("zclab 2026-11 shared key for the handshake", bytes)))
    }

    fn mac(&self, parts: &[&[u8]]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        for p in parts {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
        }
        h.finalize()
    }

    /// The receiver's proof of the key, over both nonces and the Hello.
    pub fn receiver_proof(&self, ns: &[u8], nr: &[u8], hello: &[u8]) -> String {
        self.mac(&[b"receiver", ns, nr, hello]).to_hex().to_string()
    }

    /// The sender's proof of the key.
    pub fn sender_proof(&self, ns: &[u8], nr: &[u8], hello: &[u8]) -> String {
        self.mac(&[b"sender", nr, ns, hello]).to_hex().to_string()
    }

    /// Whether `proof` (hex) is the expected one, compared in constant time.
    pub fn check(expected: &str, proof: &str) -> bool {
        match (blake3::Hash::from_hex(expected), blake3::Hash::from_hex(proof)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }

    /// The key of this session, for the file's keyed hash.
    pub fn session(&self, ns: &[u8], nr: &[u8]) -> [u8; 32] {
        *self.mac(&[b"session", ns, nr]).as_bytes()
    }
}

/// 32 random bytes as hex (getrandom).
pub fn nonce() -> std::io::Result<String> {
    let mut b = [0u8; 32];
    crate::sys::random_bytes(&mut b)?;
    Ok(blake3::Hash::from_bytes(b).to_hex().to_string())
}

/// The Hello's fields as bytes, for the proofs (so they cover what was announced).
pub fn hello_bytes(mode: &str, size: u64, chunk: u64, transfer_id: u64) -> Vec<u8> {
    format!("{mode} {size} {chunk} {transfer_id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_differ_by_role_key_and_nonce() {
        let k = Key::from_bytes(&[7u8; 32]).unwrap();
        let other = Key::from_bytes(&[8u8; 32]).unwrap();
        let h = hello_bytes("splice", 10, 4, 1);
        let r = k.receiver_proof(b"a", b"b", &h);
        assert!(Key::check(&r, &k.receiver_proof(b"a", b"b", &h)));
        assert!(!Key::check(&r, &k.sender_proof(b"a", b"b", &h)), "roles differ");
        assert!(!Key::check(&r, &other.receiver_proof(b"a", b"b", &h)), "keys differ");
        assert!(!Key::check(&r, &k.receiver_proof(b"a", b"c", &h)), "nonces differ");
        assert!(!Key::check(&r, &k.receiver_proof(b"a", b"b", &hello_bytes("splice", 11, 4, 1))), "the Hello is covered");
        assert!(!Key::check(&r, "not hex"));
        assert_ne!(k.session(b"a", b"b"), k.session(b"a", b"c"));
        assert!(Key::from_bytes(b"short").unwrap_err().to_string().contains("at least 16 bytes"));
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }
}
