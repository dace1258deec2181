//! The on-disk cache of precompiled plugins.
//!
//! Compiling a component takes ~100 ms of CPU (a Rust plugin) to several
//! seconds (a JavaScript or Python plugin, which embeds its engine); loading
//! its precompiled form takes well under a millisecond (tens of
//! milliseconds for the ~50 MiB artifact of a JS or Python plugin). Entries
//! are keyed by the SHA-256 of the wasm bytes and of the engine's
//! `precompile_compatibility_hash()` (wasmtime version, target, and every
//! setting that affects code generation), so a changed plugin or an
//! upgraded gateway never loads a stale artifact.
//!
//! Loading precompiled code is `unsafe` in wasmtime: the bytes are trusted to
//! be native code wasmtime itself produced. This module therefore only loads
//! files this host wrote itself, checked three ways: the cache folder and the
//! file belong to the same user and are not writable by group or others (the
//! host sets the folder to 0700 and files to 0600), and every file is
//! `MAGIC | artifact | sha256(MAGIC | artifact)`, which catches torn or
//! corrupted writes. Files are written to a temporary name and renamed into
//! place, so concurrent gateways sharing a folder never see partial files.
//! Anything that fails a check is recompiled and rewritten.
//!
//! Old entries are never evicted: one per plugin version per gateway version.

use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::PluginError;

const MAGIC: &[u8; 16] = b"hookgate-cwasm\x00\x01";
const SUFFIX: &str = "cwasm";

/// Whether a component came from the cache or was compiled just now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Compiled,
}

/// The cache folder, bound to one engine configuration.
#[derive(Debug)]
pub(crate) struct DiskCache {
    dir: PathBuf,
    engine_key: String,
    owner: u32,
}

impl DiskCache {
    /// Creates (or adopts) the cache folder and restricts it to its owner.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> Result<Self, PluginError> {
        let fail =
            |what: &str, e: std::io::Error| PluginError::Load(format!("plugin cache {}: {what}: {e}", dir.display()));
        fs::create_dir_all(dir).map_err(|e| fail("cannot create", e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| fail("cannot restrict to 0700", e))?;
        let owner = fs::metadata(dir).map_err(|e| fail("cannot stat", e))?.uid();
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(hasher.0.finalize())[..32].to_owned();
        Ok(DiskCache {
            dir: dir.to_owned(),
            engine_key,
            owner,
        })
    }

    /// The file that holds (or will hold) the artifact for this wasm hash.
    pub(crate) fn entry_path(&self, wasm_sha256: &[u8; 32]) -> PathBuf {
        self.dir
            .join(format!("{}-{}.{SUFFIX}", hex::encode(wasm_sha256), self.engine_key))
    }

    /// The component for `wasm`: from the cache when a valid entry exists,
    /// otherwise compiled and written to the cache (a failed write is only
    /// logged: the compiled component is still good).
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        wasm_sha256: &[u8; 32],
    ) -> Result<(Component, CacheOutcome), PluginError> {
        let path = self.entry_path(wasm_sha256);
        match self.read_entry(&path) {
            Ok(Some(artifact)) => match deserialize_own_artifact(engine, &artifact) {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "plugin cache entry unusable; recompiling")
                }
            },
            Ok(None) => {}
            Err(why) => {
                tracing::warn!(path = %path.display(), "plugin cache entry ignored: {why}; recompiling")
            }
        }
        let component = compile(engine, wasm)?;
        match component.serialize() {
            Ok(artifact) => {
                if let Err(e) = self.write_entry(&path, &artifact) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write the plugin cache; plugin still loaded");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot serialize a compiled plugin; not cached"),
        }
        Ok((component, CacheOutcome::Compiled))
    }

    /// Reads and verifies an entry. `Ok(None)`: no entry. `Err`: an entry
    /// that this host did not write or that is damaged.
    fn read_entry(&self, path: &Path) -> Result<Option<Vec<u8>>, String> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot open: {e}")),
        };
        // Checked on the open handle: what we verify is what we read.
        let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
        if !meta.is_file() {
            return Err("not a regular file".into());
        }
        if meta.uid() != self.owner || meta.mode() & 0o022 != 0 {
            return Err("not written by this gateway (owner or permissions differ)".into());
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.read_to_end(&mut bytes).map_err(|e| format!("cannot read: {e}"))?;
        if bytes.len() < MAGIC.len() + 32 || !bytes.starts_with(MAGIC) {
            return Err("not a hookgate cache file".into());
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != digest {
            return Err("checksum mismatch (torn or corrupted write)".into());
        }
        bytes.truncate(bytes.len() - 32);
        bytes.drain(..MAGIC.len());
        Ok(Some(bytes))
    }

    fn write_entry(&self, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let tmp = self.dir.join(format!(".tmp-{}-{nonce}.{SUFFIX}", std::process::id()));
        let result = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            let mut digest = Sha256::new();
            digest.update(MAGIC);
            digest.update(artifact);
            file.write_all(MAGIC)?;
            file.write_all(artifact)?;
            file.write_all(&digest.finalize())?;
            file.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// Compiles wasm bytes into a component, explaining the common mistakes.
pub(crate) fn compile(engine: &Engine, wasm: &[u8]) -> Result<Component, PluginError> {
    if wasm.len() >= 8 && wasm.starts_with(b"\0asm") && wasm[4..8] == [1, 0, 0, 0] {
        return Err(PluginError::Load(
            "this is a core WebAssembly module, not a component: build plugins with `--target wasm32-wasip2`".into(),
        ));
    }
    Component::from_binary(engine, wasm).map_err(|e| PluginError::Load(format!("not a valid plugin component: {e:#}")))
}

/// Loads an artifact read from a cache file that passed [`DiskCache::read_entry`].
#[allow(unsafe_code)]
fn deserialize_own_artifact(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `artifact` comes from a file in the host's own 0700 cache folder,
    // owned by the folder's owner, not writable by others, and framed with a
    // SHA-256 checksum the host computed when it wrote the output of
    // `Component::serialize` there. So these are bytes wasmtime produced, and
    // wasmtime itself rejects artifacts from another version or configuration.
    unsafe { Component::deserialize(engine, artifact) }
}

/// Feeds `Hash` output into SHA-256 (a stable, full-width key).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        0
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_sha256_agree_with_known_vectors() {
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn entries_written_by_others_or_damaged_are_refused() {
        let dir = std::env::temp_dir().join(format!("hookgate-cache-test-{}", std::process::id()));
        let engine = Engine::default();
        let cache = DiskCache::open(&dir, &engine).unwrap();
        let path = cache.entry_path(&[7; 32]);
        assert_eq!(cache.read_entry(&path), Ok(None));
        cache.write_entry(&path, b"artifact").unwrap();
        assert_eq!(cache.read_entry(&path), Ok(Some(b"artifact".to_vec())));
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        // A flipped byte fails the checksum.
        let mut bytes = fs::read(&path).unwrap();
        bytes[MAGIC.len()] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(cache.read_entry(&path).unwrap_err().contains("checksum"));
        // A group-writable file is not ours to trust.
        cache.write_entry(&path, b"artifact").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o664)).unwrap();
        assert!(
            cache
                .read_entry(&path)
                .unwrap_err()
                .contains("not written by this gateway")
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn core_modules_are_refused_with_a_hint() {
        let engine = Engine::default();
        let err = compile(&engine, b"\0asm\x01\0\0\0").err().unwrap();
        assert!(err.to_string().contains("wasm32-wasip2"), "{err}");
    }
}
