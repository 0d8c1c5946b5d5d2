//! [`FilesystemBlobStore`]: one file per blob under a root directory.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bedrock_chat_core::{BlobStore, Resource, StoreError};
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::key::{check_key, check_prefix, is_segment};

const BACKEND: &str = "filesystem";

/// How many times a put starts again when a concurrent `delete_prefix` removed the
/// directory it was writing into.
const PUT_ATTEMPTS: usize = 3;

/// A [`BlobStore`] of files under a root directory: key `attachments/c/m/0` is the file
/// `ROOT/attachments/c/m/0`. For one machine (a CLI, a desktop app, a single server)
/// beside a SQLite history.
///
/// - Keys are checked before any path is made (see [`BlobStore`]'s key alphabet: no
///   `..`, no absolute paths, no empty segments, only `A-Z a-z 0-9 . _ -` and `/`), so no
///   key names anything outside the root.
/// - A put writes a temporary file beside the target, syncs it and renames it over the
///   target: a reader sees the old bytes or the new ones, never part of a write, and a
///   crash leaves at most a temporary file (its name has a `~`, outside the key
///   alphabet, so it is never read as a blob).
/// - `delete_prefix` removes the files whose keys start with the prefix, then the
///   directories that left empty.
///
/// A key cannot be both a blob and a directory of blobs (`a` and `a/b`): the second put
/// fails with [`StoreError::Backend`]. The keys the chat service writes never do this.
///
/// ```
/// use bedrock_chat_core::BlobStore;
/// use bedrock_chat_store::FilesystemBlobStore;
/// use bytes::Bytes;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let root = std::env::temp_dir().join(format!("blobs-doc-{}", std::process::id()));
/// let blobs = FilesystemBlobStore::open(&root).await?;
/// blobs.put("attachments/c1/m1/0", Bytes::from_static(b"%PDF-1.7")).await?;
/// assert!(root.join("attachments/c1/m1/0").is_file());
/// assert!(blobs.put("../outside", Bytes::new()).await.is_err());
/// assert_eq!(blobs.delete_prefix("attachments/c1/").await?, 1);
/// assert!(!root.join("attachments").exists(), "empty directories go too");
/// # std::fs::remove_dir_all(&root)?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct FilesystemBlobStore {
    root: PathBuf,
}

impl FilesystemBlobStore {
    /// A store under `root`, which is created on the first put if missing. No I/O.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// A store under `root`, created now (with its parents) if missing, as a server start
    /// wants: a root that cannot be made is reported before the first attachment.
    ///
    /// # Errors
    /// [`StoreError::Backend`] (or `Unavailable`, for a transient I/O error) when `root`
    /// cannot be created.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let store = Self::new(root);
        tokio::fs::create_dir_all(&store.root)
            .await
            .map_err(|e| io_error(e, "create the root directory", &store.root))?;
        Ok(store)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        let mut path = self.root.clone();
        path.extend(check_key(key)?);
        Ok(path)
    }

    async fn write_once(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            // `path_of` always joins at least one checked segment to the root.
            return Err(std::io::Error::new(
                ErrorKind::InvalidInput,
                "a blob path without a file name",
            ));
        };
        tokio::fs::create_dir_all(dir).await?;
        let temp = dir.join(format!(
            "{}~{}.tmp",
            name.to_string_lossy(),
            uuid::Uuid::new_v4().simple()
        ));
        let written = async {
            let mut file = tokio::fs::File::create(&temp).await?;
            file.write_all(bytes).await?;
            file.sync_data().await?;
            drop(file);
            tokio::fs::rename(&temp, path).await
        }
        .await;
        if written.is_err() {
            // Best effort: the write already failed, and the name never reads as a blob.
            let _ = tokio::fs::remove_file(&temp).await;
        }
        written
    }

    /// Removes the directories from `dir` up to (not including) the root while they are
    /// empty.
    async fn prune_empty_dirs(&self, mut dir: PathBuf) {
        while dir.starts_with(&self.root) && dir != self.root {
            // Fails when the directory holds something (a new blob, a temporary file) or
            // is already gone: either way, stop there.
            if tokio::fs::remove_dir(&dir).await.is_err() {
                return;
            }
            if !dir.pop() {
                return;
            }
        }
    }

    /// Deletes the blobs in the tree under `top` (a directory), counting them, and the
    /// directories that leaves empty.
    async fn delete_tree(&self, top: PathBuf) -> Result<u64, StoreError> {
        let mut deleted = 0;
        let mut dirs = vec![top];
        let mut visited = Vec::new();
        while let Some(dir) = dirs.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(io_error(e, "list", &dir)),
            };
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(|e| io_error(e, "list", &dir))?
            {
                deleted += self.delete_entry(&entry, &mut dirs).await?;
            }
            visited.push(dir);
        }
        // Deepest first: a directory is listed after its parent.
        for dir in visited.into_iter().rev() {
            let _ = tokio::fs::remove_dir(&dir).await;
        }
        Ok(deleted)
    }

    /// Deletes `entry` when it is a blob (answering 1) or queues it when it is a
    /// directory of blobs; anything else (a temporary file, a name outside the key
    /// alphabet, a symbolic link) is left alone.
    async fn delete_entry(
        &self,
        entry: &tokio::fs::DirEntry,
        dirs: &mut Vec<PathBuf>,
    ) -> Result<u64, StoreError> {
        let path = entry.path();
        if !entry.file_name().to_str().is_some_and(is_segment) {
            return Ok(0);
        }
        let kind = match entry.file_type().await {
            Ok(kind) => kind,
            Err(e) if gone(&e) => return Ok(0),
            Err(e) => return Err(io_error(e, "inspect", &path)),
        };
        if kind.is_dir() {
            dirs.push(path);
            Ok(0)
        } else if kind.is_file() {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(1),
                Err(e) if gone(&e) => Ok(0),
                Err(e) => Err(io_error(e, "delete", &path)),
            }
        } else {
            Ok(0)
        }
    }
}

#[async_trait]
impl BlobStore for FilesystemBlobStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let mut attempt = 1;
        loop {
            match self.write_once(&path, &bytes).await {
                Ok(()) => return Ok(()),
                // A concurrent delete_prefix pruned the directory between its creation
                // and the write: make it again.
                Err(e) if e.kind() == ErrorKind::NotFound && attempt < PUT_ATTEMPTS => {
                    attempt += 1;
                }
                Err(e) => return Err(io_error(e, "write", &path)),
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = self.path_of(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            // Missing, a directory of other blobs (`a` when `a/b` exists), or below a
            // blob (`a/b` when `a` is one): no blob has this key.
            Err(e) if gone(&e) || e.kind() == ErrorKind::IsADirectory => {
                Err(StoreError::not_found(Resource::Attachment))
            }
            Err(e) => Err(io_error(e, "read", &path)),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        check_prefix(prefix)?;
        // `attachments/abc` is the directory `attachments` and the names in it that start
        // with `abc`; `attachments/abc/` is the directory `attachments/abc`, all of it.
        let (dir_part, name_prefix) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let mut dir = self.root.clone();
        dir.extend(dir_part.split('/').filter(|s| !s.is_empty()));
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if gone(&e) => return Ok(0),
            Err(e) => return Err(io_error(e, "list", &dir)),
        };
        let mut deleted = 0;
        let mut dirs = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_error(e, "list", &dir))?
        {
            if entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(name_prefix))
            {
                deleted += self.delete_entry(&entry, &mut dirs).await?;
            }
        }
        for tree in dirs {
            deleted += self.delete_tree(tree).await?;
        }
        self.prune_empty_dirs(dir).await;
        Ok(deleted)
    }
}

/// Whether an I/O error means the path is not there (or a part of it is a file).
fn gone(error: &std::io::Error) -> bool {
    matches!(error.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

/// A transient I/O failure (a full disk may be cleared, a busy resource freed) is
/// `Unavailable`; anything else (permissions, a read-only filesystem, a key clashing with
/// a directory) `Backend`.
fn io_error(error: std::io::Error, action: &str, path: &Path) -> StoreError {
    let retryable = matches!(
        error.kind(),
        ErrorKind::Interrupted
            | ErrorKind::TimedOut
            | ErrorKind::WouldBlock
            | ErrorKind::ResourceBusy
            | ErrorKind::StorageFull
            | ErrorKind::QuotaExceeded
    );
    let source = std::io::Error::new(
        error.kind(),
        format!("could not {action} {}: {error}", path.display()),
    );
    bedrock_chat_core::backend::BackendError::classified(BACKEND, retryable, Box::new(source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root() -> PathBuf {
        std::env::temp_dir().join(format!(
            "bedrock-chat-blob-unit-{}",
            uuid::Uuid::new_v4().simple()
        ))
    }

    #[tokio::test]
    async fn a_key_is_a_path_under_the_root() {
        let root = temp_root();
        let store = FilesystemBlobStore::new(&root);
        store
            .put("a/b/c.bin", Bytes::from_static(b"abc"))
            .await
            .unwrap();
        assert_eq!(std::fs::read(root.join("a/b/c.bin")).unwrap(), b"abc");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn temporary_files_and_foreign_names_are_neither_read_nor_counted() {
        let root = temp_root();
        let store = FilesystemBlobStore::open(&root).await.unwrap();
        store.put("d/x", Bytes::from_static(b"x")).await.unwrap();
        std::fs::write(root.join("d/x~abc.tmp"), b"partial").unwrap();
        std::fs::write(root.join("d/with space"), b"foreign").unwrap();
        assert_eq!(store.delete_prefix("d/").await.unwrap(), 1);
        assert!(
            root.join("d/x~abc.tmp").exists(),
            "a write in flight is left"
        );
        assert!(root.join("d").is_dir(), "not empty, so kept");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn delete_prefix_removes_the_directories_it_empties_and_keeps_the_root() {
        let root = temp_root();
        let store = FilesystemBlobStore::open(&root).await.unwrap();
        for key in ["attachments/c1/m1/0", "attachments/c1/m2/0", "other/k"] {
            store.put(key, Bytes::from_static(b"1")).await.unwrap();
        }
        assert_eq!(store.delete_prefix("attachments/c1/").await.unwrap(), 2);
        assert!(!root.join("attachments").exists());
        assert!(root.join("other/k").is_file());
        assert_eq!(store.delete_prefix("").await.unwrap(), 1);
        assert!(root.is_dir(), "the root stays");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn a_key_clashing_with_a_directory_fails_without_harm() {
        let root = temp_root();
        let store = FilesystemBlobStore::open(&root).await.unwrap();
        store.put("a/b", Bytes::from_static(b"1")).await.unwrap();
        assert!(matches!(
            store.put("a", Bytes::from_static(b"2")).await,
            Err(StoreError::Backend {
                backend: "filesystem",
                ..
            })
        ));
        assert!(matches!(
            store.get("a").await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            store.get("a/b/c").await,
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(store.get("a/b").await.unwrap().as_ref(), b"1");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn an_unwritable_root_is_a_backend_error() {
        let file = temp_root();
        std::fs::write(&file, b"not a directory").unwrap();
        let error = FilesystemBlobStore::open(file.join("blobs"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::Backend {
                    backend: "filesystem",
                    ..
                }
            ),
            "{error:?}"
        );
        std::fs::remove_file(&file).unwrap();
    }
}
