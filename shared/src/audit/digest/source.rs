//! The [`DigestSource`] port: what the validator reads from a trail bucket, and two
//! implementations that need no AWS: [`LocalDigestSource`] (a directory copy of the bucket
//! plus a `metadata.json` map, as in the test vectors) and [`MemDigestSource`] (tests).
//!
//! The S3 implementation lives under `ports::aws`. A missing object is a state the
//! validator reports (`digest-missing`, `log-missing`), so `get_*` return `Option`; errors
//! are only for the source itself failing, classified transient or permanent.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use serde::Deserialize;

/// User metadata CloudTrail attaches to a digest object (`x-amz-meta-*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct DigestMetadata {
    /// Hex RSA signature (`x-amz-meta-signature`).
    #[serde(default)]
    pub signature: Option<String>,
    /// `SHA256withRSA` (`x-amz-meta-signature-algorithm`).
    #[serde(default, rename = "signature-algorithm")]
    pub signature_algorithm: Option<String>,
    /// Present on `_backfill` digests only (`x-amz-meta-backfill-generation-timestamp`).
    #[serde(default, rename = "backfill-generation-timestamp")]
    pub backfill_generation_timestamp: Option<String>,
}

/// The bucket reading the validator needs.
pub trait DigestSource: Send + Sync {
    /// Every object key under `prefix` (all keys when `None`), in any order.
    ///
    /// # Errors
    /// [`SourceError`] when the listing cannot be read.
    fn list_keys(
        &self,
        prefix: Option<&str>,
    ) -> impl Future<Output = Result<Vec<String>, SourceError>> + Send;

    /// The object's bytes as stored (still gzipped); `None` when there is no such object.
    ///
    /// # Errors
    /// [`SourceError`] when the object exists but cannot be read.
    fn get_object(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Bytes>, SourceError>> + Send;

    /// The digest object's user metadata (fields absent when the object has none);
    /// `None` when there is no such object.
    ///
    /// # Errors
    /// [`SourceError`] when the metadata cannot be read.
    fn get_digest_metadata(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<DigestMetadata>, SourceError>> + Send;
}

/// The source could not answer (as opposed to: the object is absent).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Local file system error.
    #[error("reading {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The local `metadata.json` is not a map of key to metadata.
    #[error("metadata file {} is not a JSON map of key to digest metadata", path.display())]
    MetadataFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A remote service call failed.
    #[error("{operation} {key:?} failed")]
    Service {
        /// The operation, e.g. `GetObject`.
        operation: &'static str,
        /// The key or prefix it was for.
        key: String,
        /// Throttling, 5xx, timeout or dispatch failure: worth retrying.
        transient: bool,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl SourceError {
    /// Whether retrying the same call may succeed (throttling, 5xx, timeouts, interrupted I/O).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            Self::MetadataFile { .. } => false,
            Self::Service { transient, .. } => *transient,
        }
    }
}

/// A local copy of a trail bucket: each object at `root/<key>`, plus the digests' user
/// metadata from a JSON map `{ "<key>": { "signature": .., .. } }`.
#[derive(Debug, Clone)]
pub struct LocalDigestSource {
    root: PathBuf,
    metadata: HashMap<String, DigestMetadata>,
}

impl LocalDigestSource {
    /// Opens the bucket copy at `root` with the metadata map in `metadata_file`.
    ///
    /// # Errors
    /// [`SourceError::Io`] when the metadata file cannot be read or `root` is not a
    /// directory; [`SourceError::MetadataFile`] when the map is malformed.
    pub async fn open(
        root: impl Into<PathBuf>,
        metadata_file: impl AsRef<Path>,
    ) -> Result<Self, SourceError> {
        let root = root.into();
        let meta_path = metadata_file.as_ref();
        let raw = tokio::fs::read(meta_path)
            .await
            .map_err(|source| SourceError::Io {
                path: meta_path.to_owned(),
                source,
            })?;
        let metadata =
            serde_json::from_slice(&raw).map_err(|source| SourceError::MetadataFile {
                path: meta_path.to_owned(),
                source,
            })?;
        let dir = tokio::fs::metadata(&root)
            .await
            .map_err(|source| SourceError::Io {
                path: root.clone(),
                source,
            })?;
        if !dir.is_dir() {
            let source = io::Error::new(io::ErrorKind::InvalidInput, "not a directory");
            return Err(SourceError::Io { path: root, source });
        }
        Ok(Self { root, metadata })
    }

    /// Builds a source from a root directory and an already loaded metadata map.
    pub fn new(root: impl Into<PathBuf>, metadata: HashMap<String, DigestMetadata>) -> Self {
        Self {
            root: root.into(),
            metadata,
        }
    }

    /// The file for `key`, or `None` when the key cannot name a file inside `root`
    /// (`..`, `.`, empty segments, absolute paths): digests name log keys, and a crafted
    /// digest must not make the validator read outside the bucket copy.
    fn path_of(&self, key: &str) -> Option<PathBuf> {
        if key.is_empty() || key.contains('\\') || key.contains('\0') {
            return None;
        }
        let rel = Path::new(key);
        let mut segs = 0usize;
        for c in rel.components() {
            match c {
                Component::Normal(_) => segs += 1,
                _ => return None,
            }
        }
        // `components` silently drops empty and `.` segments: require a round trip
        if segs != key.split('/').count() {
            return None;
        }
        Some(self.root.join(rel))
    }

    async fn read_optional(&self, key: &str) -> Result<Option<Bytes>, SourceError> {
        let Some(path) = self.path_of(key) else {
            return Ok(None);
        };
        match tokio::fs::read(&path).await {
            Ok(v) => Ok(Some(Bytes::from(v))),
            Err(e) if is_absent(&e) => Ok(None),
            Err(source) => Err(SourceError::Io { path, source }),
        }
    }
}

/// Errors that mean "no object at that key" in a directory copy of a bucket.
fn is_absent(e: &io::Error) -> bool {
    // a key that is a "folder" of other keys is a directory here, and no object in S3
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::IsADirectory | io::ErrorKind::NotADirectory
    )
}

impl DigestSource for LocalDigestSource {
    async fn list_keys(&self, prefix: Option<&str>) -> Result<Vec<String>, SourceError> {
        let mut keys = Vec::new();
        // iterative walk: no recursion depth to exhaust on deep trees
        let mut stack = vec![(self.root.clone(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let mut rd = tokio::fs::read_dir(&dir)
                .await
                .map_err(|source| SourceError::Io {
                    path: dir.clone(),
                    source,
                })?;
            while let Some(entry) = rd.next_entry().await.map_err(|source| SourceError::Io {
                path: dir.clone(),
                source,
            })? {
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue; // not UTF-8: cannot be an S3 key written by this copy
                };
                let key = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let ft = entry.file_type().await.map_err(|source| SourceError::Io {
                    path: entry.path(),
                    source,
                })?;
                if ft.is_dir() {
                    stack.push((entry.path(), key));
                } else if prefix.is_none_or(|p| key.starts_with(p)) {
                    keys.push(key);
                }
            }
        }
        Ok(keys)
    }

    async fn get_object(&self, key: &str) -> Result<Option<Bytes>, SourceError> {
        self.read_optional(key).await
    }

    async fn get_digest_metadata(&self, key: &str) -> Result<Option<DigestMetadata>, SourceError> {
        let Some(path) = self.path_of(key) else {
            return Ok(None);
        };
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(self.metadata.get(key).cloned().unwrap_or_default())),
            Ok(_) => Ok(None),
            Err(e) if is_absent(&e) => Ok(None),
            Err(source) => Err(SourceError::Io { path, source }),
        }
    }
}

/// An in-memory bucket for tests: key -> (bytes, metadata).
#[derive(Debug, Clone, Default)]
pub struct MemDigestSource {
    objects: BTreeMap<String, (Bytes, DigestMetadata)>,
}

impl MemDigestSource {
    /// An empty bucket.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores an object (replacing any previous one).
    pub fn put(
        &mut self,
        key: impl Into<String>,
        body: impl Into<Bytes>,
        metadata: DigestMetadata,
    ) {
        self.objects.insert(key.into(), (body.into(), metadata));
    }

    /// Deletes an object; returns whether it existed.
    pub fn remove(&mut self, key: &str) -> bool {
        self.objects.remove(key).is_some()
    }
}

impl DigestSource for MemDigestSource {
    async fn list_keys(&self, prefix: Option<&str>) -> Result<Vec<String>, SourceError> {
        Ok(self
            .objects
            .keys()
            .filter(|k| prefix.is_none_or(|p| k.starts_with(p)))
            .cloned()
            .collect())
    }

    async fn get_object(&self, key: &str) -> Result<Option<Bytes>, SourceError> {
        Ok(self.objects.get(key).map(|(b, _)| b.clone()))
    }

    async fn get_digest_metadata(&self, key: &str) -> Result<Option<DigestMetadata>, SourceError> {
        Ok(self.objects.get(key).map(|(_, m)| m.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One contract, both implementations.
    async fn contract<S: DigestSource>(s: &S) {
        let mut keys = s.list_keys(None).await.unwrap();
        keys.sort();
        assert_eq!(keys, ["a/b/digest.json.gz", "a/log.json.gz", "top"]);
        let mut under = s.list_keys(Some("a/")).await.unwrap();
        under.sort();
        assert_eq!(under, ["a/b/digest.json.gz", "a/log.json.gz"]);
        assert_eq!(
            s.get_object("a/log.json.gz").await.unwrap().as_deref(),
            Some(&b"log"[..])
        );
        assert_eq!(s.get_object("a/missing").await.unwrap(), None);
        assert_eq!(
            s.get_object("a").await.unwrap(),
            None,
            "a folder is not an object"
        );
        assert_eq!(s.get_object("a/../top").await.unwrap(), None);
        let m = s
            .get_digest_metadata("a/b/digest.json.gz")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.signature.as_deref(), Some("abcd"));
        assert_eq!(m.signature_algorithm.as_deref(), Some("SHA256withRSA"));
        assert_eq!(m.backfill_generation_timestamp, None);
        assert_eq!(
            s.get_digest_metadata("a/log.json.gz").await.unwrap(),
            Some(DigestMetadata::default())
        );
        assert_eq!(s.get_digest_metadata("nope").await.unwrap(), None);
    }

    fn meta() -> DigestMetadata {
        DigestMetadata {
            signature: Some("abcd".into()),
            signature_algorithm: Some("SHA256withRSA".into()),
            backfill_generation_timestamp: None,
        }
    }

    #[tokio::test]
    async fn mem_source_contract() {
        let mut m = MemDigestSource::new();
        m.put("a/b/digest.json.gz", &b"digest"[..], meta());
        m.put("a/log.json.gz", &b"log"[..], DigestMetadata::default());
        m.put("top", &b"t"[..], DigestMetadata::default());
        contract(&m).await;
    }

    #[tokio::test]
    async fn local_source_contract() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("bucket");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/digest.json.gz"), b"digest").unwrap();
        std::fs::write(root.join("a/log.json.gz"), b"log").unwrap();
        std::fs::write(root.join("top"), b"t").unwrap();
        let meta_file = dir.path().join("metadata.json");
        std::fs::write(
            &meta_file,
            br#"{"a/b/digest.json.gz": {"signature": "abcd", "signature-algorithm": "SHA256withRSA"}}"#,
        )
        .unwrap();
        let s = LocalDigestSource::open(&root, &meta_file).await.unwrap();
        contract(&s).await;
        assert_eq!(s.get_object("/etc/passwd").await.unwrap(), None);
        assert_eq!(s.get_object("a//log.json.gz").await.unwrap(), None);
        assert_eq!(s.get_object("./top").await.unwrap(), None);
    }

    #[tokio::test]
    async fn local_source_open_errors_are_permanent() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("metadata.json");
        std::fs::write(&bad, b"[1,2]").unwrap();
        let e = LocalDigestSource::open(dir.path(), &bad).await.unwrap_err();
        assert!(matches!(e, SourceError::MetadataFile { .. }));
        assert!(!e.is_transient());
        let e = LocalDigestSource::open(dir.path(), dir.path().join("absent.json"))
            .await
            .unwrap_err();
        assert!(matches!(e, SourceError::Io { .. }));
        assert!(!e.is_transient());
    }
}
