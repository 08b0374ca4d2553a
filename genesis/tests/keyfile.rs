//! Key files: written 0600, refused when others may read them, clear errors when damaged.

use ipledger_genesis::{KeyFile, KeyFileError};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn write_with_mode(path: &Path, contents: &[u8], mode: u32) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn written_key(dir: &Path) -> (PathBuf, KeyFile) {
    let path = dir.join("bank-a.key");
    let key = KeyFile::generate().unwrap();
    key.write(&path).unwrap();
    (path, key)
}

#[test]
fn write_then_read_round_trips_with_mode_0600() {
    let temp = tempfile::tempdir().unwrap();
    let (path, key) = written_key(temp.path());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let back = KeyFile::read(&path).unwrap();
    assert_eq!(back.public_key(), key.public_key());
    assert_eq!(back.signing_key().seed(), key.signing_key().seed());
    // A signature made with the read key verifies under the written public key.
    let signature = back.signing_key().sign(b"pledge");
    key.public_key().verify(b"pledge", &signature).unwrap();
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(temp.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn the_format_is_the_documented_json() {
    let temp = tempfile::tempdir().unwrap();
    let (path, key) = written_key(temp.path());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let object = json.as_object().unwrap();
    assert_eq!(object.len(), 3);
    assert_eq!(object["algorithm"], "ed25519");
    assert_eq!(
        object["secret_seed_hex"],
        hex::encode(key.signing_key().seed())
    );
    assert_eq!(object["public_key"], key.public_key().to_string());
}

#[test]
fn an_existing_key_is_never_overwritten() {
    let temp = tempfile::tempdir().unwrap();
    let (path, key) = written_key(temp.path());
    let other = KeyFile::generate().unwrap();
    let error = other.write(&path).unwrap_err();
    assert!(matches!(error, KeyFileError::Exists { .. }), "{error}");
    assert!(error.to_string().contains("already exists"));
    assert_eq!(KeyFile::read(&path).unwrap().public_key(), key.public_key());
}

#[test]
fn a_key_file_others_can_read_is_refused_naming_the_mode_and_the_fix() {
    let temp = tempfile::tempdir().unwrap();
    let (path, _) = written_key(temp.path());
    for mode in [0o644, 0o640, 0o604, 0o660, 0o606] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let error = KeyFile::read(&path).unwrap_err();
        assert!(
            matches!(error, KeyFileError::Permissions { mode: m, .. } if m == mode),
            "{error}"
        );
        let message = error.to_string();
        assert!(message.contains(&format!("{mode:04o}")), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(
            message.contains(&format!("chmod 600 {}", path.display())),
            "{message}"
        );
    }
    // After the fix it reads.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    KeyFile::read(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    KeyFile::read(&path).unwrap();
}

fn malformed(contents: &[u8]) -> String {
    let temp = tempfile::tempdir().unwrap();
    let path = temp.path().join("x.key");
    write_with_mode(&path, contents, 0o600);
    let error = KeyFile::read(&path).unwrap_err();
    assert!(matches!(error, KeyFileError::Malformed { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("x.key"), "{message}");
    message
}

#[test]
fn damaged_key_files_give_clear_errors_without_the_secret() {
    let key = KeyFile::from_test_seed("t", "x");
    let json = key.to_json();
    let secret = hex::encode(key.signing_key().seed());

    let truncated = malformed(&json.as_bytes()[..json.len() - 30]);
    assert!(truncated.contains("truncated"), "{truncated}");
    let empty = malformed(b"");
    assert!(empty.contains("empty"), "{empty}");
    let garbage = malformed(b"\x89PNG\r\n\x1a\n\0\0\0garbage");
    assert!(garbage.contains("not JSON"), "{garbage}");
    let missing = malformed(br#"{"algorithm": "ed25519"}"#);
    assert!(missing.contains("secret_seed_hex"), "{missing}");

    let short = json.replace(&secret, &secret[..60]);
    let message = malformed(short.as_bytes());
    assert!(message.contains("64 hex digits"), "{message}");
    assert!(!message.contains(&secret[..60]));

    let mut bad_hex = secret.clone();
    bad_hex.replace_range(0..1, "z");
    let message = malformed(json.replace(&secret, &bad_hex).as_bytes());
    assert!(message.contains("not a hex digit"), "{message}");
    assert!(!message.contains(&bad_hex));

    let other_key = KeyFile::from_test_seed("t", "y").public_key().to_string();
    let message = malformed(
        json.replace(&key.public_key().to_string(), &other_key)
            .as_bytes(),
    );
    assert!(message.contains("does not match"), "{message}");
    assert!(!message.contains(&secret));

    let message = malformed(json.replace("\"ed25519\"", "\"sm2\"").as_bytes());
    assert!(message.contains("sm2"), "{message}");

    let message = malformed(
        json.replace("\"algorithm\"", "\"comment\": \"hi\", \"algorithm\"")
            .as_bytes(),
    );
    assert!(message.contains("comment"), "{message}");
}

#[test]
fn odd_paths_give_clear_errors() {
    let temp = tempfile::tempdir().unwrap();
    let missing = temp.path().join("missing.key");
    let error = KeyFile::read(&missing).unwrap_err();
    assert!(matches!(error, KeyFileError::Read { .. }));
    assert!(error.to_string().contains("missing.key"));

    let dir = temp.path().join("dir.key");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let error = KeyFile::read(&dir).unwrap_err();
    assert!(matches!(error, KeyFileError::NotAFile { .. }), "{error}");

    let big = temp.path().join("big.key");
    write_with_mode(&big, &vec![b' '; 10_000], 0o600);
    let error = KeyFile::read(&big).unwrap_err();
    assert!(matches!(error, KeyFileError::TooLarge { .. }), "{error}");

    let error = KeyFile::generate()
        .unwrap()
        .write(temp.path().join("no-such-dir").join("k.key"))
        .unwrap_err();
    assert!(matches!(error, KeyFileError::Write { .. }), "{error}");
}
