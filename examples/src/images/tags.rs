//! Tags in `index.json`: one descriptor per (name, manifest), with the
//! name in the `io.containerd.image.name` annotation (and the tag in
//! `org.opencontainers.image.ref.name`, as the OCI layout spec has it).
//! An image without a tag keeps one descriptor without a name, so that
//! `docker images` shows it as `<none>:<none>` (dangling), as Docker does.

use std::collections::HashMap;

use oci_spec::image::{Descriptor, Digest, ImageIndex};

use super::reference::ImageRef;

/// The annotation holding the full `name:tag` (containerd, docker save).
pub const NAME_ANNOTATION: &str = "io.containerd.image.name";
/// The OCI annotation holding the tag.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// The name an index entry carries, if any (unparsable names are ignored).
pub(crate) fn entry_name(desc: &Descriptor) -> Option<ImageRef> {
    desc.annotations()
        .as_ref()?
        .get(NAME_ANNOTATION)?
        .parse()
        .ok()
}

/// The manifest a name points to.
pub(crate) fn lookup(index: &ImageIndex, name: &ImageRef) -> Option<Digest> {
    index
        .manifests()
        .iter()
        .find(|d| entry_name(d).as_ref() == Some(name))
        .map(|d| d.digest().clone())
}

/// All names of the manifest `digest`.
pub(crate) fn names_of(index: &ImageIndex, digest: &Digest) -> Vec<ImageRef> {
    let mut names: Vec<ImageRef> = index
        .manifests()
        .iter()
        .filter(|d| d.digest() == digest)
        .filter_map(entry_name)
        .collect();
    names.sort();
    names
}

/// The distinct manifests of the index, in index order.
pub(crate) fn manifests(index: &ImageIndex) -> Vec<Descriptor> {
    let mut seen = std::collections::HashSet::new();
    index
        .manifests()
        .iter()
        .filter(|d| seen.insert(d.digest().clone()))
        .map(|d| strip_names(d.clone()))
        .collect()
}

fn strip_names(mut desc: Descriptor) -> Descriptor {
    desc.set_annotations(None);
    desc
}

fn named(desc: &Descriptor, name: &ImageRef) -> Descriptor {
    let mut desc = strip_names(desc.clone());
    desc.set_annotations(Some(HashMap::from([
        (NAME_ANNOTATION.to_string(), name.to_string()),
        (REF_NAME_ANNOTATION.to_string(), name.tag().to_string()),
    ])));
    desc
}

/// Add the image `desc` with `name` (or untagged when `None`). A name
/// that pointed elsewhere moves; the image it left keeps an untagged
/// entry if that was its last name.
pub(crate) fn add(index: &mut ImageIndex, desc: &Descriptor, name: Option<&ImageRef>) {
    match name {
        Some(name) => {
            untag_keep(index, name);
            edit(index, |m| {
                m.retain(|d| !(d.digest() == desc.digest() && entry_name(d).is_none()));
                m.push(named(desc, name));
            });
        }
        None => {
            if !has_entry(index, desc.digest()) {
                edit(index, |m| m.push(strip_names(desc.clone())));
            }
        }
    }
}

/// Change the index's manifest list in place (oci-spec has no `_mut`).
fn edit(index: &mut ImageIndex, f: impl FnOnce(&mut Vec<Descriptor>)) {
    let mut manifests = index.manifests().clone();
    f(&mut manifests);
    index.set_manifests(manifests);
}

fn has_entry(index: &ImageIndex, digest: &Digest) -> bool {
    index.manifests().iter().any(|d| d.digest() == digest)
}

/// Remove `name`, keeping the image as untagged if it was its last name.
pub(crate) fn untag_keep(index: &mut ImageIndex, name: &ImageRef) -> Option<Digest> {
    let pos = index
        .manifests()
        .iter()
        .position(|d| entry_name(d).as_ref() == Some(name))?;
    let removed = index.manifests()[pos].clone();
    edit(index, |m| {
        m.remove(pos);
        if !m.iter().any(|d| d.digest() == removed.digest()) {
            m.push(strip_names(removed.clone()));
        }
    });
    Some(removed.digest().clone())
}

/// Remove every entry of the manifest `digest`.
pub(crate) fn remove_image(index: &mut ImageIndex, digest: &Digest) {
    edit(index, |m| m.retain(|d| d.digest() != digest));
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{ImageIndexBuilder, MediaType};

    fn desc(byte: &[u8]) -> Descriptor {
        Descriptor::new(
            MediaType::ImageManifest,
            10,
            super::super::digest::sha256_of(byte),
        )
    }

    fn r(s: &str) -> ImageRef {
        s.parse().unwrap()
    }

    #[test]
    fn tags_move_and_leave_dangling_images() {
        let mut index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .manifests(Vec::new())
            .build()
            .unwrap();
        let (a, b) = (desc(b"a"), desc(b"b"));
        add(&mut index, &a, None);
        assert_eq!(manifests(&index).len(), 1);
        add(&mut index, &a, Some(&r("x")));
        add(&mut index, &a, Some(&r("y:1")));
        assert_eq!(
            index.manifests().len(),
            2,
            "untagged entry replaced by names"
        );
        assert_eq!(names_of(&index, a.digest()), vec![r("x"), r("y:1")]);
        // Moving x to b leaves a with y:1 only.
        add(&mut index, &b, Some(&r("x")));
        assert_eq!(lookup(&index, &r("x")).as_ref(), Some(b.digest()));
        assert_eq!(names_of(&index, a.digest()), vec![r("y:1")]);
        // Moving a's last name leaves a dangling but present.
        add(&mut index, &b, Some(&r("y:1")));
        assert!(names_of(&index, a.digest()).is_empty());
        assert_eq!(manifests(&index).len(), 2);
        assert_eq!(untag_keep(&mut index, &r("x")).as_ref(), Some(b.digest()));
        assert_eq!(untag_keep(&mut index, &r("x")), None);
        remove_image(&mut index, a.digest());
        assert_eq!(manifests(&index).len(), 1);
    }
}
