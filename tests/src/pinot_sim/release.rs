//! The Apache Pinot release a simulated cluster answers as, and the build each instance runs.
//!
//! A cluster answers as the release of its live controller instances (the oldest when they
//! differ), which the simulated kubelet reads from each pod's image tag; a test can override it
//! through the admin API. Only the releases that `shared/pinot/` describes are modelled: 1.2.0,
//! 1.3.0, 1.4.0, 1.5.x (1.5.0 and 1.5.1 differ only in `pom.xml` files) and master
//! (`1.6.0-SNAPSHOT`). The git shas are those of the release tags of `apache/pinot`
//! (`git rev-list -n1 release-1.2.0`, ...) and of the master commit the reference was read at.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Pinot release whose controller behaviour the simulator models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Release {
    V1_2_0,
    V1_3_0,
    V1_4_0,
    /// 1.5.0 and 1.5.1.
    V1_5,
    /// `1.6.0-SNAPSHOT`.
    Master,
}

impl Release {
    pub const ALL: [Release; 5] = [Self::V1_2_0, Self::V1_3_0, Self::V1_4_0, Self::V1_5, Self::Master];

    /// The name the admin API uses: `1.2.0`, `1.3.0`, `1.4.0`, `1.5.x`, `master`.
    pub fn name(self) -> &'static str {
        match self {
            Self::V1_2_0 => "1.2.0",
            Self::V1_3_0 => "1.3.0",
            Self::V1_4_0 => "1.4.0",
            Self::V1_5 => "1.5.x",
            Self::Master => "master",
        }
    }

    /// A release by its admin API name (`1.5.0` and `1.5.1` are accepted for `1.5.x`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "1.2.0" => Some(Self::V1_2_0),
            "1.3.0" => Some(Self::V1_3_0),
            "1.4.0" => Some(Self::V1_4_0),
            "1.5.x" | "1.5.0" | "1.5.1" => Some(Self::V1_5),
            "master" => Some(Self::Master),
            _ => None,
        }
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Release {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Release {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown Pinot release {name:?}; use 1.2.0, 1.3.0, 1.4.0, 1.5.x or master"
            ))
        })
    }
}

/// One Pinot build: its release, its `PinotVersion.VERSION` and the git sha its jars carry in
/// `Implementation-Version` (`<version>-<sha>`, root `pom.xml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Build {
    pub release: Release,
    pub version: &'static str,
    pub sha: &'static str,
}

const BUILDS: [Build; 6] = [
    Build { release: Release::V1_2_0, version: "1.2.0", sha: "cc33ac502a02e2fe830fe21e556234ee99351a7a" },
    Build { release: Release::V1_3_0, version: "1.3.0", sha: "c0023da298126af6a01b802a04b66da34ba16134" },
    Build { release: Release::V1_4_0, version: "1.4.0", sha: "3a56c9db545e3b403863d8319055ea9be8eae771" },
    Build { release: Release::V1_5, version: "1.5.0", sha: "30fdfeea3a533d61d4eaf4c8050f5f4c07493de4" },
    Build { release: Release::V1_5, version: "1.5.1", sha: "020ff0d0538b2079d4cf4cb2676a191c87c95d4d" },
    Build { release: Release::Master, version: "1.6.0-SNAPSHOT", sha: "210c2951e720b72cbcb87224ff5e46237e098acd" },
];

impl Build {
    /// The newest build of a release (1.5.x: 1.5.1).
    pub fn of(release: Release) -> Self {
        *BUILDS.iter().rev().find(|b| b.release == release).expect("every release has a build")
    }

    /// The build an image runs, from its tag: `x.y.z...` by minor version (1.2 → 1.2.0 ...
    /// 1.5 → 1.5.x; `1.5.0...` is 1.5.0, other 1.5 tags 1.5.1); `latest`, `master`, anything
    /// containing `SNAPSHOT`, an image without a tag, and any tag not understood → master.
    pub fn of_image(image: &str) -> Self {
        let Some(tag) = image_tag(image) else { return Self::of(Release::Master) };
        if tag.contains("SNAPSHOT") {
            return Self::of(Release::Master);
        }
        let mut parts = tag.splitn(3, '.');
        let (Some(major), Some(minor), Some(patch)) = (parts.next(), parts.next(), parts.next()) else {
            return Self::of(Release::Master);
        };
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !numeric(major) || !numeric(minor) || !patch.starts_with(|c: char| c.is_ascii_digit()) {
            return Self::of(Release::Master);
        }
        let release = match (major, minor) {
            ("1", "2") => Release::V1_2_0,
            ("1", "3") => Release::V1_3_0,
            ("1", "4") => Release::V1_4_0,
            ("1", "5") => Release::V1_5,
            _ => Release::Master,
        };
        let patch_digits: String = patch.chars().take_while(char::is_ascii_digit).collect();
        let exact = format!("{major}.{minor}.{patch_digits}");
        BUILDS.iter().find(|b| b.release == release && b.version == exact).copied().unwrap_or(Self::of(release))
    }

    /// `Implementation-Version` of its jars: what `GET /version` reports per jar and the
    /// `Pinot-Controller-Version` header carries.
    pub fn implementation_version(self) -> String {
        format!("{}-{}", self.version, self.sha)
    }
}

/// The tag of an image reference (`registry:5000/apachepinot/pinot:1.2.0@sha256:...` →
/// `1.2.0`), if it has one.
pub fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let (_, tag) = without_digest.rsplit_once(':')?;
    (!tag.contains('/') && !tag.is_empty()).then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_map_by_minor_version_and_everything_else_is_master() {
        let release = |image: &str| Build::of_image(image).release;
        assert_eq!(release("apachepinot/pinot:1.2.0"), Release::V1_2_0);
        assert_eq!(release("apachepinot/pinot:1.2.0-21-ms-openjdk"), Release::V1_2_0);
        assert_eq!(release("registry:5000/apachepinot/pinot:1.3.0-broken"), Release::V1_3_0);
        assert_eq!(release("apachepinot/pinot:1.4.0@sha256:abc"), Release::V1_4_0);
        assert_eq!(release("apachepinot/pinot:1.5.0"), Release::V1_5);
        assert_eq!(release("apachepinot/pinot:1.5.1"), Release::V1_5);
        assert_eq!(release("apachepinot/pinot:latest"), Release::Master);
        assert_eq!(release("apachepinot/pinot:master"), Release::Master);
        assert_eq!(release("apachepinot/pinot:1.6.0-SNAPSHOT"), Release::Master);
        assert_eq!(release("apachepinot/pinot:1.2.0-SNAPSHOT"), Release::Master);
        assert_eq!(release("apachepinot/pinot:release-1.2.0"), Release::Master);
        assert_eq!(release("apachepinot/pinot:1.2"), Release::Master);
        assert_eq!(release("registry:5000/apachepinot/pinot"), Release::Master);
        assert_eq!(release("apachepinot/pinot:0.12.1"), Release::Master);
    }

    #[test]
    fn builds_carry_their_exact_version_and_sha() {
        assert_eq!(Build::of_image("apachepinot/pinot:1.5.0").version, "1.5.0");
        assert_eq!(Build::of_image("apachepinot/pinot:1.5.1").version, "1.5.1");
        assert_eq!(Build::of_image("apachepinot/pinot:1.5.7").version, "1.5.1");
        assert_eq!(Build::of(Release::V1_5).version, "1.5.1");
        assert_eq!(
            Build::of(Release::V1_2_0).implementation_version(),
            "1.2.0-cc33ac502a02e2fe830fe21e556234ee99351a7a"
        );
        assert!(Build::of(Release::Master).implementation_version().starts_with("1.6.0-SNAPSHOT-"));
    }

    #[test]
    fn releases_parse_their_names_and_order_by_age() {
        for r in Release::ALL {
            assert_eq!(Release::parse(r.name()), Some(r));
            assert_eq!(serde_json::from_value::<Release>(serde_json::to_value(r).unwrap()).unwrap(), r);
        }
        assert_eq!(Release::parse("1.5.0"), Some(Release::V1_5));
        assert_eq!(Release::parse("1.1.0"), None);
        assert!(Release::V1_2_0 < Release::V1_3_0 && Release::V1_5 < Release::Master);
    }
}
