//! A busybox image for tests, benchmarks and the engine's acceptance
//! suite, made from Debian's `busybox-static` (no network needed).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use oci_spec::image::Digest;

use super::error::{io_err, read_err, Result};
use super::import::ImportOptions;
use super::store::ImageStore;

/// The name the busybox image is imported as.
pub const BUSYBOX_IMAGE: &str = "busybox:latest";

/// Write a rootfs tar of busybox (as `docker export` would) to `out`.
///
/// ```no_run
/// let mut tar = Vec::new();
/// examples::images::write_busybox_rootfs_tar(&mut tar)?;
/// # Ok::<(), examples::images::ImageError>(())
/// ```
pub fn write_busybox_rootfs_tar(out: impl Write) -> Result<()> {
    let dir = tempfile::tempdir().map_err(io_err("create temp dir in", &std::env::temp_dir()))?;
    let rootfs = dir.path().join("rootfs");
    libcontainer::fixtures::write_rootfs(&rootfs)?;
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder
        .append_dir_all(".", &rootfs)
        .map_err(read_err("busybox rootfs"))?;
    builder
        .into_inner()
        .map_err(read_err("busybox rootfs"))?
        .flush()
        .map_err(read_err("busybox rootfs"))?;
    Ok(())
}

/// Write the busybox rootfs tar to the file `path`.
pub fn write_busybox_rootfs_tar_file(path: &Path) -> Result<()> {
    let file = File::create(path).map_err(io_err("create", path))?;
    write_busybox_rootfs_tar(BufWriter::new(file))
}

/// The import options of the busybox image: like Docker Hub's busybox,
/// `sh` as command and a PATH.
pub fn busybox_import_options() -> ImportOptions {
    ImportOptions::new()
        .tag(BUSYBOX_IMAGE)
        .change(r#"CMD ["sh"]"#)
        .change("ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .message("busybox from Debian's busybox-static")
}

/// Import busybox into `store` as `busybox:latest`; returns the image ID.
///
/// ```no_run
/// use examples::images::{import_busybox, ImageStore};
/// let store = ImageStore::open("/tmp/images")?;
/// let id = import_busybox(&store)?;
/// assert_eq!(store.image_id("busybox")?, id);
/// # Ok::<(), examples::images::ImageError>(())
/// ```
pub fn import_busybox(store: &ImageStore) -> Result<Digest> {
    let mut tar = Vec::new();
    write_busybox_rootfs_tar(&mut tar)?;
    store.import(&tar[..], &busybox_import_options())
}

/// Write a `docker save` archive of busybox (`busybox:latest`), made by
/// importing busybox into a scratch store and saving it: the input for
/// `docker load -i` in acceptance tests. Returns the image ID.
///
/// ```no_run
/// let mut archive = Vec::new();
/// let id = examples::images::write_busybox_image_archive(&mut archive)?;
/// # Ok::<(), examples::images::ImageError>(())
/// ```
pub fn write_busybox_image_archive(out: impl Write) -> Result<Digest> {
    let dir = tempfile::tempdir().map_err(io_err("create temp dir in", &std::env::temp_dir()))?;
    let store = ImageStore::open(dir.path())?;
    let id = import_busybox(&store)?;
    store.save(&[BUSYBOX_IMAGE], out)?;
    Ok(id)
}
