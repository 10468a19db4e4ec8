//! Where evidence documents are stored: a local directory (the default,
//! `./evidence-store` or `file:///path`), or memory (`memory:`, for batch
//! runs that take the documents from the records they publish). Other
//! object stores (`s3://`, `gs://`, `az://`) are not built into this version
//! and are refused with a clear error.

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::{Error, Result};

/// The evidence document store.
#[derive(Debug, Clone)]
pub struct Documents {
    store: Arc<dyn ObjectStore>,
    /// The directory, for a local store (batch writes skip the async layer).
    local: Option<std::path::PathBuf>,
    /// Base URL of stored documents (`file:///abs/dir`).
    base_url: String,
}

impl Documents {
    /// Opens `location`: a directory path or a `file://` URL (created if
    /// missing), or `memory:`.
    pub fn open(location: &str) -> Result<Self> {
        let err = |reason: String| Error::Documents { url: location.to_owned(), reason };
        if location == "memory:" {
            let store = object_store::memory::InMemory::new();
            return Ok(Self { store: Arc::new(store), local: None, base_url: "memory:".to_owned() });
        }
        let dir = if let Some(rest) = location.strip_prefix("file://") {
            std::path::PathBuf::from(rest)
        } else if location.contains("://") {
            return Err(
                err("only local directories (a path or file:///path) are supported by this version".to_owned()),
            );
        } else {
            std::path::PathBuf::from(location)
        };
        std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
        let dir = dir.canonicalize().map_err(|e| err(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| err(e.to_string()))?;
        Ok(Self { store: Arc::new(store), base_url: format!("file://{}", dir.display()), local: Some(dir) })
    }

    /// The URL a document at `path` has.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base_url)
    }

    /// Writes (or overwrites) `path`.
    pub async fn put(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        self.store
            .put(&Path::from(path), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| Error::Documents { url: self.url(path), reason: e.to_string() })
    }

    /// Writes (or overwrites) many documents. A local directory gets them
    /// from a few blocking writers, in place: a rename per file would cost
    /// more than the write, and a document cut short by a crash is written
    /// again, byte for byte, when its batch is processed again (documents are
    /// deterministic, and the batch's offsets were not stored).
    pub async fn put_many(&self, files: Vec<(String, Vec<u8>)>) -> Result<()> {
        let Some(dir) = self.local.clone() else {
            for (path, bytes) in files {
                self.put(&path, bytes).await?;
            }
            return Ok(());
        };
        // Small files: the filesystem's latency, not its bandwidth, is the
        // limit, so several writers at once.
        const WRITERS: usize = 16;
        let chunk = files.len().div_ceil(WRITERS).max(1);
        let mut files = files;
        let mut tasks = Vec::new();
        while !files.is_empty() {
            let part: Vec<(String, Vec<u8>)> = files.drain(..chunk.min(files.len())).collect();
            let (dir, base_url) = (dir.clone(), self.base_url.clone());
            tasks.push(tokio::task::spawn_blocking(move || {
                let mut made = std::collections::HashSet::new();
                for (path, bytes) in part {
                    let target = dir.join(&path);
                    let err = |e: std::io::Error| Error::Documents {
                        url: format!("{base_url}/{path}"),
                        reason: e.to_string(),
                    };
                    if let Some(parent) = target.parent()
                        && made.insert(parent.to_path_buf())
                    {
                        std::fs::create_dir_all(parent).map_err(err)?;
                    }
                    std::fs::write(&target, &bytes).map_err(err)?;
                }
                Ok::<_, Error>(())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| Error::Documents { url: self.base_url.clone(), reason: e.to_string() })??;
        }
        Ok(())
    }

    /// Makes every document written so far durable: for a local directory,
    /// one `syncfs(2)` of its filesystem (file contents and the directory
    /// entries that name them) instead of a flush per file; nothing for
    /// memory. The service calls it before it commits a batch's rows, so a
    /// row never names a document a power loss could take back.
    pub async fn sync(&self) -> Result<()> {
        let Some(dir) = self.local.clone() else { return Ok(()) };
        let url = self.base_url.clone();
        let err = move |e: std::io::Error| Error::Documents { url: url.clone(), reason: format!("sync: {e}") };
        let err2 = err.clone();
        tokio::task::spawn_blocking(move || {
            let handle = std::fs::File::open(&dir)?;
            rustix::fs::syncfs(&handle).map_err(std::io::Error::from)
        })
        .await
        .map_err(|e| err2(std::io::Error::other(e)))?
        .map_err(err)
    }

    /// Deletes `path` (absent is fine).
    pub async fn delete(&self, path: &str) -> Result<()> {
        match self.store.delete(&Path::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::Documents { url: self.url(path), reason: e.to_string() }),
        }
    }

    /// Reads `path`; `None` if it does not exist.
    pub async fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.store.get(&Path::from(path)).await {
            Ok(r) => r
                .bytes()
                .await
                .map(|b| Some(b.to_vec()))
                .map_err(|e| Error::Documents { url: self.url(path), reason: e.to_string() }),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::Documents { url: self.url(path), reason: e.to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn documents_written_then_synced_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let docs = Documents::open(dir.path().to_str().unwrap()).unwrap();
        let files: Vec<(String, Vec<u8>)> =
            (0..40).map(|i| (format!("chain/{:04}/{i}.json", i % 3), format!("{{\"n\":{i}}}").into_bytes())).collect();
        docs.put_many(files.clone()).await.unwrap();
        docs.put("log/head.json", b"{}".to_vec()).await.unwrap();
        docs.sync().await.unwrap();
        for (path, bytes) in files {
            assert_eq!(docs.get(&path).await.unwrap(), Some(bytes));
        }
        // Memory has nothing to sync.
        Documents::open("memory:").unwrap().sync().await.unwrap();
    }
}
