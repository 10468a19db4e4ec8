//! Ed25519 signing keys.
//!
//! Files are PKCS#8 PEM (private) and SPKI PEM (public), readable by
//! `openssl pkey`. The key id is `ed25519:` followed by the hex SHA-256 of
//! the 32 raw public-key bytes, so anyone holding the public key can
//! recompute it.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The key id of a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    format!("ed25519:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// Paths written by [`generate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    pub private: PathBuf,
    pub public: PathBuf,
    pub key_id: String,
}

fn key_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Key { path: path.display().to_string(), reason: reason.into() }
}

/// Writes a new key pair: `<dir>/<name>.key` (mode 0600) and
/// `<dir>/<name>.pub`. Refuses to overwrite an existing key.
pub fn generate(dir: &Path, name: &str) -> Result<KeyFiles> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| key_err(dir, format!("no randomness: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    std::fs::create_dir_all(dir).map_err(|e| key_err(dir, e.to_string()))?;
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| key_err(&private, e.to_string()))?;
    let pub_pem = key.verifying_key().to_public_key_pem(LineEnding::LF).map_err(|e| key_err(&public, e.to_string()))?;
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&private)
            .map_err(|e| key_err(&private, format!("{e} (an existing key is never overwritten)")))?;
        f.write_all(pem.as_bytes()).map_err(|e| key_err(&private, e.to_string()))?;
    }
    std::fs::write(&public, pub_pem).map_err(|e| key_err(&public, e.to_string()))?;
    Ok(KeyFiles { private, public, key_id: key_id(&key.verifying_key()) })
}

/// Loads a private key, refusing one that group or others can read.
pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| key_err(path, e.to_string()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(key_err(
            path,
            format!("is readable by others (mode {mode:03o}); run `chmod 600 {}`", path.display()),
        ));
    }
    let pem = std::fs::read_to_string(path).map_err(|e| key_err(path, e.to_string()))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| key_err(path, format!("not an Ed25519 PKCS#8 PEM private key: {e}")))
}

/// Loads a public key (SPKI PEM).
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey> {
    let pem = std::fs::read_to_string(path).map_err(|e| key_err(path, e.to_string()))?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|e| key_err(path, format!("not an Ed25519 public key PEM: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_load_and_refuse_open_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path(), "signing").unwrap();
        let key = load_signing_key(&files.private).unwrap();
        let public = load_verifying_key(&files.public).unwrap();
        assert_eq!(key.verifying_key(), public);
        assert_eq!(key_id(&public), files.key_id);
        assert!(files.key_id.starts_with("ed25519:") && files.key_id.len() == 8 + 64);
        assert!(generate(dir.path(), "signing").is_err(), "never overwrites");
        std::fs::set_permissions(&files.private, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_signing_key(&files.private).unwrap_err().to_string();
        assert!(err.contains("readable by others") && err.contains("chmod 600"), "{err}");
    }
}
