//! SHA-256 content digests: hashing readers and writers, parsing and
//! verification. Every blob of the store is named by one of these.

use std::io::{self, Read, Write};

use oci_spec::image::{Digest, DigestAlgorithm};
use sha2::{Digest as _, Sha256};

use super::error::{ImageError, Result};

/// The digest of `bytes`, as `sha256:<hex>`.
///
/// ```
/// let d = examples::images::sha256_of(b"");
/// assert_eq!(d.digest(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
/// ```
pub fn sha256_of(bytes: &[u8]) -> Digest {
    from_hasher(Sha256::new_with_prefix(bytes))
}

fn from_hasher(hasher: Sha256) -> Digest {
    let hex = format!("{:x}", hasher.finalize());
    // A sha256 hex string of 64 lowercase characters always parses.
    Digest::try_from(format!("sha256:{hex}")).unwrap_or_else(|_| unreachable_digest())
}

#[cold]
fn unreachable_digest() -> Digest {
    // Never reached: kept so that no `unwrap` hides in library code.
    Digest::try_from("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        .unwrap_or_else(|_| unreachable!("constant digest parses"))
}

/// Parse `s` as a `sha256:<64 hex>` digest; `what` names the field in errors.
pub fn parse_sha256(s: &str, what: &str) -> Result<Digest> {
    let digest = Digest::try_from(s)
        .map_err(|e| ImageError::BadArchive(format!("{what}: {s:?} is not a digest: {e}")))?;
    if *digest.algorithm() != DigestAlgorithm::Sha256 {
        return Err(ImageError::BadArchive(format!(
            "{what}: digest algorithm {} is not supported (only sha256)",
            digest.algorithm()
        )));
    }
    Ok(digest)
}

/// Fail with [`ImageError::DigestMismatch`] unless `actual == expected`.
pub(crate) fn verify(what: &str, expected: &Digest, actual: &Digest) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(ImageError::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

/// A writer that hashes and counts what passes through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// The inner writer, the digest and the byte count.
    pub(crate) fn finish(self) -> (W, Digest, u64) {
        (self.inner, from_hasher(self.hasher), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what is read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Read the rest of the stream, then return its digest and length.
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((from_hasher(self.hasher), self.len))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            sha256_of(b"hello\n").to_string(),
            "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
    }

    #[test]
    fn writer_and_reader_agree_with_one_shot() {
        let data = vec![7u8; 100_000];
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (out, d, n) = w.finish();
        assert_eq!(out, data);
        assert_eq!(n, 100_000);
        assert_eq!(d, sha256_of(&data));
        let mut r = HashingReader::new(&data[..]);
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        assert_eq!(r.finish().unwrap(), (sha256_of(&data), 100_000));
    }

    #[test]
    fn parse_rejects_other_algorithms_and_bad_hex() {
        let sha512 = format!("sha512:{}", "a".repeat(128));
        assert!(parse_sha256(&sha512, "config")
            .unwrap_err()
            .to_string()
            .contains("only sha256"));
        let short = parse_sha256("sha256:abc", "layers[0]")
            .unwrap_err()
            .to_string();
        assert!(short.contains("layers[0]"), "{short}");
        assert!(parse_sha256(&format!("sha256:{}", "A".repeat(64)), "x").is_err());
        assert!(parse_sha256(&format!("sha256:{}", "0".repeat(64)), "x").is_ok());
    }

    #[test]
    fn verify_reports_both_digests() {
        let a = sha256_of(b"a");
        let b = sha256_of(b"b");
        assert!(verify("blob", &a, &a).is_ok());
        let msg = verify("layer 1", &a, &b).unwrap_err().to_string();
        assert!(msg.contains("layer 1") && msg.contains(a.digest()) && msg.contains(b.digest()));
    }
}
