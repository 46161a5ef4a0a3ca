//! The Apache Pinot releases the operator knows, and what each offers the operator.
//!
//! Every difference here was read from Pinot's source at the release tags (`release-1.2.0` …
//! `release-1.5.1`, and master at `1.6.0-SNAPSHOT`); the facts, with their source paths, are in
//! the project's Pinot reference (`shared/pinot/README.md`, "What differs between releases").
//! A release the operator does not know is treated as the oldest it supports, and while a
//! cluster moves from one release to another the operator uses only what both offer
//! ([`ClusterRelease::effective`]).

use std::fmt;

/// A Pinot release line the operator supports. Ordered from the oldest to the newest, so that
/// "what both offer" is the smaller of two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PinotRelease {
    V1_2,
    V1_3,
    V1_4,
    /// 1.5.0 and 1.5.1 (1.5.1 changed only dependency versions).
    V1_5,
    /// Pinot's master branch (`1.6.0-SNAPSHOT`), which has what no release has yet.
    Master,
}

impl PinotRelease {
    /// The oldest supported release: what an unknown release is treated as.
    pub const OLDEST: PinotRelease = PinotRelease::V1_2;
    pub const ALL: [PinotRelease; 5] =
        [PinotRelease::V1_2, PinotRelease::V1_3, PinotRelease::V1_4, PinotRelease::V1_5, PinotRelease::Master];

    /// The name users see (`status.pinot.release`, the policies' `pinot/release`).
    pub fn as_str(self) -> &'static str {
        match self {
            PinotRelease::V1_2 => "1.2.0",
            PinotRelease::V1_3 => "1.3.0",
            PinotRelease::V1_4 => "1.4.0",
            PinotRelease::V1_5 => "1.5.x",
            PinotRelease::Master => "master",
        }
    }

    /// The release a Pinot version string names: `1.2.0`, `1.2.0-<git sha>` (what
    /// `GET /version` answers), `1.5.1`, `1.6.0-SNAPSHOT-<sha>` (master). `None` for a version
    /// the operator does not know (older or newer than those).
    pub fn from_version(version: &str) -> Option<PinotRelease> {
        let version = version.trim();
        let mut parts = version.splitn(3, '.');
        let major: u32 = parts.next()?.parse().ok()?;
        let minor: u32 = parts.next()?.parse().ok()?;
        let rest = parts.next().unwrap_or("0");
        // The patch number, then an optional `-suffix`.
        let (patch, suffix) = rest.split_once('-').unwrap_or((rest, ""));
        patch.parse::<u32>().ok()?;
        match (major, minor) {
            (1, 2) => Some(PinotRelease::V1_2),
            (1, 3) => Some(PinotRelease::V1_3),
            (1, 4) => Some(PinotRelease::V1_4),
            (1, 5) => Some(PinotRelease::V1_5),
            (1, 6) if suffix.starts_with("SNAPSHOT") => Some(PinotRelease::Master),
            _ => None,
        }
    }

    /// The release an image's tag names, e.g. `apachepinot/pinot:1.2.0`,
    /// `apachepinot/pinot:release-1.3.0-21-openjdk`, `registry:5000/pinot:1.5.1@sha256:...`.
    /// `None` when the tag names no version the operator knows (`latest`, a digest only).
    pub fn from_image(image: &str) -> Option<PinotRelease> {
        let without_digest = image.split('@').next().unwrap_or(image);
        let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
        let (_, tag) = last.split_once(':')?;
        // The first `<digits>.<digits>...` in the tag.
        let start = tag.find(|c: char| c.is_ascii_digit())?;
        let candidate = tag[start..].trim_start_matches(|c: char| !c.is_ascii_digit());
        PinotRelease::from_version(candidate)
    }

    /// `PUT /instances/{id}/state?state=queries_disable|queries_enable` (servers): master only;
    /// every release answers 400 `Unknown state`.
    pub fn has_queries_state(self) -> bool {
        self == PinotRelease::Master
    }

    /// `PUT /instances/{id}/state?state=drain` (minions): from 1.5.0.
    pub fn has_drain_state(self) -> bool {
        self >= PinotRelease::V1_5
    }
}

impl fmt::Display for PinotRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the operator knows of one cluster's release: what its controller reports, what its
/// images say, and the release it acts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRelease {
    /// The release the operator uses: only what it offers is called.
    pub effective: PinotRelease,
    /// What the controller's `GET /version` said (without the git sha), when it answered.
    pub reported: Option<String>,
    /// Why the effective release is the oldest supported one, when a version or image was not
    /// recognised; for status and an event.
    pub unknown: Option<String>,
}

impl Default for ClusterRelease {
    fn default() -> Self {
        Self { effective: PinotRelease::OLDEST, reported: None, unknown: None }
    }
}

impl ClusterRelease {
    /// The release to act for, from the controller's version (when it answered) and every image
    /// the cluster runs or is moving to (pods' and pools'). The controller's version is the
    /// API's; while images differ (an upgrade or rollback under way) the oldest of them counts
    /// too, so the operator uses only what both releases offer. Images whose tag names no known
    /// release are ignored when the controller answered, and make the release the oldest
    /// supported one when it did not.
    pub fn effective<'a>(reported: Option<&str>, images: impl IntoIterator<Item = &'a str>) -> ClusterRelease {
        let mut images: Vec<&str> = images.into_iter().filter(|i| !i.is_empty()).collect();
        images.sort_unstable();
        images.dedup();
        let reported = reported.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let from_images: Vec<(&str, Option<PinotRelease>)> =
            images.iter().map(|i| (*i, PinotRelease::from_image(i))).collect();
        let oldest_image = from_images.iter().filter_map(|(_, r)| *r).min();
        match &reported {
            Some(version) => match PinotRelease::from_version(version) {
                Some(controller) => ClusterRelease {
                    effective: oldest_image.map_or(controller, |i| i.min(controller)),
                    reported: reported.clone(),
                    unknown: None,
                },
                None => ClusterRelease {
                    effective: PinotRelease::OLDEST,
                    unknown: Some(format!(
                        "the Pinot controller reports version {version}, which is not a release the operator knows \
                         (1.2.0 to 1.5.x, or master); it uses only what {} offers",
                        PinotRelease::OLDEST
                    )),
                    reported: reported.clone(),
                },
            },
            None => {
                let unrecognised: Vec<&str> =
                    from_images.iter().filter(|(_, r)| r.is_none()).map(|(i, _)| *i).collect();
                if unrecognised.is_empty() {
                    ClusterRelease {
                        effective: oldest_image.unwrap_or(PinotRelease::OLDEST),
                        reported: None,
                        unknown: None,
                    }
                } else {
                    ClusterRelease {
                        effective: PinotRelease::OLDEST,
                        reported: None,
                        unknown: Some(format!(
                            "the tag of image {} names no Pinot release the operator knows (1.2.0 to 1.5.x, or \
                             master) and the controller has not said its version yet; it uses only what {} offers",
                            unrecognised.join(", "),
                            PinotRelease::OLDEST
                        )),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_name_their_release() {
        assert_eq!(PinotRelease::from_version("1.2.0"), Some(PinotRelease::V1_2));
        assert_eq!(PinotRelease::from_version("1.2.0-8a3d7c1f"), Some(PinotRelease::V1_2));
        assert_eq!(PinotRelease::from_version("1.3.0"), Some(PinotRelease::V1_3));
        assert_eq!(PinotRelease::from_version("1.4.0-abc"), Some(PinotRelease::V1_4));
        assert_eq!(PinotRelease::from_version("1.5.1-abc"), Some(PinotRelease::V1_5));
        assert_eq!(PinotRelease::from_version("1.6.0-SNAPSHOT-210c2951e72"), Some(PinotRelease::Master));
        // Not known: older, newer, or not a version at all.
        assert_eq!(PinotRelease::from_version("1.1.0"), None);
        assert_eq!(PinotRelease::from_version("1.6.0"), None);
        assert_eq!(PinotRelease::from_version("2.0.0"), None);
        assert_eq!(PinotRelease::from_version("Unknown"), None);
    }

    #[test]
    fn image_tags_name_their_release() {
        assert_eq!(PinotRelease::from_image("apachepinot/pinot:1.2.0"), Some(PinotRelease::V1_2));
        assert_eq!(PinotRelease::from_image("apachepinot/pinot:release-1.3.0-21-openjdk"), Some(PinotRelease::V1_3));
        assert_eq!(PinotRelease::from_image("registry:5000/team/pinot:1.5.1@sha256:00"), Some(PinotRelease::V1_5));
        assert_eq!(PinotRelease::from_image("apachepinot/pinot:1.3.0-broken"), Some(PinotRelease::V1_3));
        assert_eq!(PinotRelease::from_image("apachepinot/pinot:latest"), None);
        assert_eq!(PinotRelease::from_image("apachepinot/pinot"), None);
        assert_eq!(PinotRelease::from_image("registry:5000/pinot"), None);
    }

    #[test]
    fn only_master_has_the_queries_states_and_drain_starts_with_1_5() {
        for r in PinotRelease::ALL {
            assert_eq!(r.has_queries_state(), r == PinotRelease::Master, "{r}");
            assert_eq!(r.has_drain_state(), r >= PinotRelease::V1_5, "{r}");
        }
    }

    #[test]
    fn the_effective_release_is_what_the_controller_and_every_image_offer() {
        let r = ClusterRelease::effective(Some("1.5.0-abc"), ["apachepinot/pinot:1.5.0"]);
        assert_eq!((r.effective, r.unknown), (PinotRelease::V1_5, None));
        // An upgrade from 1.2.0 under way: what both have.
        let r = ClusterRelease::effective(Some("1.5.0-abc"), ["apachepinot/pinot:1.5.0", "apachepinot/pinot:1.2.0"]);
        assert_eq!(r.effective, PinotRelease::V1_2);
        // The controller has not answered: the images say.
        let r = ClusterRelease::effective(None, ["apachepinot/pinot:1.4.0"]);
        assert_eq!(r.effective, PinotRelease::V1_4);
        // `latest` is ignored once the controller says what it runs...
        let r = ClusterRelease::effective(Some("1.6.0-SNAPSHOT-x"), ["apachepinot/pinot:latest"]);
        assert_eq!(r.effective, PinotRelease::Master);
        // ...and is the oldest release until then, said so.
        let r = ClusterRelease::effective(None, ["apachepinot/pinot:latest"]);
        assert_eq!(r.effective, PinotRelease::OLDEST);
        assert!(r.unknown.unwrap().contains("apachepinot/pinot:latest"));
        // A controller of a release the operator does not know.
        let r = ClusterRelease::effective(Some("1.9.0-x"), ["apachepinot/pinot:1.9.0"]);
        assert_eq!(r.effective, PinotRelease::OLDEST);
        assert!(r.unknown.unwrap().contains("1.9.0-x"));
        // Nothing known at all.
        assert_eq!(ClusterRelease::effective(None, []).effective, PinotRelease::OLDEST);
    }
}
