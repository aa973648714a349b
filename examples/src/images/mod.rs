//! The image store of the example engine `berthd`.
//!
//! A content-addressed store in the [OCI image layout] under one root
//! (berthd: [`ImageStore::DEFAULT_ROOT`]): `oci-layout`, `index.json`
//! (tags as annotations) and `blobs/sha256/…`, plus `layers/<diff-id>/`
//! where each layer is unpacked once, with whiteouts already in overlayfs
//! form. A container's rootfs is an overlay of those layers
//! ([`ImageStore::mount`]).
//!
//! - [`ImageStore::load`]: `docker load` of docker-save or OCI archives
//! - [`ImageStore::import`]: `docker import` of a rootfs tar
//! - [`ImageStore::save`]: `docker save`
//! - [`ImageStore::pull`]: `docker pull` from a registry ([`RemoteRef`],
//!   [`RegistryConfig`])
//! - [`ImageStore::list`], [`ImageStore::inspect`], [`ImageStore::tag`],
//!   [`ImageStore::remove`]: `docker images`, `image inspect`, `tag`, `rmi`
//! - [`ImageStore::runtime_config`]: what a container takes from the image
//!
//! Writes are staged under `tmp/` and renamed into place under a lock, so
//! a failed import leaves nothing behind; every blob is checked against
//! its digest.
//!
//! ```no_run
//! use examples::images::{import_busybox, ImageStore};
//! let store = ImageStore::open("/var/lib/berth/images")?;
//! import_busybox(&store)?;
//! let rootfs = store.mount("busybox", std::path::Path::new("/run/berth/containers/c1"))?;
//! println!("{}", rootfs.rootfs().display());
//! # Ok::<(), examples::images::ImageError>(())
//! ```
//!
//! [OCI image layout]: https://github.com/opencontainers/image-spec/blob/main/image-layout.md

mod archive;
mod changes;
mod digest;
mod error;
mod export;
mod fixtures;
mod import;
mod inspect;
mod layout;
mod load;
mod overlay;
mod pull;
mod reference;
mod registry;
mod remove;
mod repo_digests;
mod runtime_config;
mod staging;
mod store;
mod tags;
mod time;
mod unpack;

pub use changes::Change;
pub use digest::{parse_sha256, sha256_of};
pub use error::{ImageError, Result};
pub use fixtures::{
    busybox_import_options, import_busybox, write_busybox_image_archive, write_busybox_rootfs_tar,
    write_busybox_rootfs_tar_file, BUSYBOX_IMAGE,
};
pub use import::ImportOptions;
pub use inspect::{Empty, ImageInspect, ImageSummary, InspectConfig, InspectRootFs};
pub use load::LoadedImage;
pub use oci_spec::image::Digest;
pub use overlay::{overlay_options, OverlayMount};
pub use pull::{PullProgress, PulledImage};
pub use reference::ImageRef;
pub use registry::{
    login, login_domain, Credentials, RegistryConfig, RegistryError, RegistryResult, RemoteRef,
};
pub use remove::{ImageUsage, NoContainers, Removed};
pub use runtime_config::ImageRuntimeConfig;
pub use store::ImageStore;
pub use tags::{NAME_ANNOTATION, REF_NAME_ANNOTATION};
pub use unpack::{Compression, OverlayWhiteouts, UnpackedLayer, WhiteoutWriter};
