//! The operator's container image, built without a container engine (`deploy/image/build.sh`,
//! umoci) and published with `deploy/image/push.sh` (skopeo) to real registries on loopback
//! (Debian's `docker-registry`): one over plain HTTP, one over TLS with its own CA and basic
//! auth. The image is pulled back from the registry by the digest `push.sh` printed and looked at
//! as a user would: its configuration (non-root user, entrypoint, command, labels), the files of
//! its layer (the binary, `/etc/passwd`, the CA bundle, the loader and libraries, `/tmp`), its
//! size, and the binary run from the pulled root filesystem with nothing of this machine's.
//!
//! The image is built from the debug binary beside the test executables (a release build would
//! take minutes); build.sh does not care which binary it gets. No Kubernetes apiserver needed.

use std::{
    io::Read,
    path::{Component, Path, PathBuf},
    process::Command,
};

use pinot_testbed::{
    harness::{operator_binary, repo_root},
    registry::{LocalRegistry, RegistryOptions},
};
use serde_json::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const MIB: u64 = 1024 * 1024;

/// A directory removed when the test ends, passed or not.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pinot-image-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a command; its stdout if it succeeds, else the test fails with its stderr.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?} does not start: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout
}

fn last_line(out: &str) -> &str {
    out.lines().last().unwrap_or_default().trim()
}

fn script(name: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("deploy/image").join(name)).current_dir(repo_root());
    // Only what each call sets.
    for var in [
        "REGISTRY",
        "IMAGE_TAG",
        "REGISTRY_INSECURE",
        "REGISTRY_CA_DIR",
        "REGISTRY_AUTH_FILE",
        "REGISTRY_USERNAME",
        "REGISTRY_PASSWORD",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// `blobs/<algorithm>/<hex>` of a digest in an OCI image layout.
fn blob(layout: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').expect("a digest");
    layout.join("blobs").join(algorithm).join(hex)
}

/// The path `path` names inside `root`, symbolic links resolved as a container's runtime
/// resolves them: an absolute target is taken from `root`, not from this machine's `/`.
fn resolve_in(root: &Path, path: &str) -> PathBuf {
    let mut pending: Vec<String> = path.split('/').filter(|c| !c.is_empty()).rev().map(String::from).collect();
    let mut current = PathBuf::new();
    let mut links = 0;
    while let Some(component) = pending.pop() {
        match component.as_str() {
            "." => continue,
            ".." => {
                current.pop();
                continue;
            }
            _ => {}
        }
        let candidate = current.join(&component);
        let on_disk = root.join(&candidate);
        match std::fs::symlink_metadata(&on_disk) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                assert!(links < 40, "too many symbolic links resolving {path} in {}", root.display());
                let target = std::fs::read_link(&on_disk).unwrap();
                if target.is_absolute() {
                    current = PathBuf::new();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(s) => pending.push(s.to_string_lossy().into_owned()),
                        Component::ParentDir => pending.push("..".into()),
                        Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                    }
                }
            }
            _ => current = candidate,
        }
    }
    root.join(current)
}

/// The program interpreter (PT_INTERP) an x86-64/aarch64 ELF binary asks for.
fn elf_interpreter(binary: &Path) -> String {
    let mut head = Vec::new();
    std::fs::File::open(binary).unwrap().take(1 << 20).read_to_end(&mut head).unwrap();
    assert_eq!(&head[..4], b"\x7fELF", "{} is not an ELF file", binary.display());
    assert_eq!(head[4], 2, "a 64-bit ELF file");
    let u16_at = |o: usize| u16::from_le_bytes(head[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(head[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(ph) == 3 {
            let (offset, size) = (u64_at(ph + 8), u64_at(ph + 32));
            let interp = &head[offset..offset + size];
            return String::from_utf8_lossy(interp.strip_suffix(&[0]).unwrap_or(interp)).into_owned();
        }
    }
    panic!("{} has no program interpreter: not a dynamically linked binary", binary.display());
}

/// Whether two files have the same content, read in chunks (the debug binary is large).
fn same_content(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (std::fs::File::open(a).unwrap(), std::fs::File::open(b).unwrap());
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba).unwrap();
        if n == 0 {
            return true;
        }
        fb.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}

/// The directories under `root` holding shared libraries (not following symbolic links).
fn library_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut has_library = false;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() && entry.file_name().to_string_lossy().contains(".so") {
                has_library = true;
            }
        }
        if has_library {
            dirs.push(dir);
        }
    }
    dirs.sort();
    dirs
}

fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}

#[tokio::test]
async fn the_image_builds_without_a_container_engine_and_pulls_back_as_pushed() {
    let binary = operator_binary();
    let binary_size = std::fs::metadata(&binary).unwrap().len();
    let work = TempDir::new("work");
    let layout = work.0.join("oci");

    // make image, with the debug binary and the layout in a temporary directory.
    let built = run(script("build.sh").env("PINOT_IMAGE_BINARY", &binary).env("PINOT_IMAGE_LAYOUT", &layout));
    assert_eq!(last_line(&built), format!("oci:{}:{VERSION}", layout.display()), "build.sh's last line: {built}");
    // Built twice: the second run replaces the tag, the layout keeps one image and no stray blobs.
    let rebuilt = run(script("build.sh").env("PINOT_IMAGE_BINARY", &binary).env("PINOT_IMAGE_LAYOUT", &layout));
    println!("build.sh (second run):\n{rebuilt}");
    let index = read_json(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "one image in the layout after two builds: {index}");
    assert_eq!(manifests[0]["annotations"]["org.opencontainers.image.ref.name"], VERSION);
    let local_manifest = read_json(&blob(&layout, manifests[0]["digest"].as_str().unwrap()));
    let blobs = std::fs::read_dir(layout.join("blobs/sha256")).unwrap().count();
    assert_eq!(
        blobs,
        2 + local_manifest["layers"].as_array().unwrap().len(),
        "the layout's blobs: the old ones are gone"
    );

    // push.sh names what it needs.
    let out = script("push.sh").env("PINOT_IMAGE_LAYOUT", &layout).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("REGISTRY is not set"), "{stderr}");

    // make push REGISTRY=<plain-HTTP registry>/<path> REGISTRY_INSECURE=1
    let plain = LocalRegistry::start("image-plain", RegistryOptions::default()).await;
    let registry = format!("{}/team", plain.host);
    let pushed = run(script("push.sh")
        .env("PINOT_IMAGE_LAYOUT", &layout)
        .env("REGISTRY", &registry)
        .env("REGISTRY_INSECURE", "1"));
    let pinned = last_line(&pushed).to_string();
    let digest = pinned
        .strip_prefix(&format!("{registry}/pinot-operator@"))
        .unwrap_or_else(|| panic!("push.sh's last line is the pushed image by digest: {pushed}"))
        .to_string();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{pinned}");
    assert_eq!(digest, manifests[0]["digest"], "the registry has the manifest the layout has");

    // Pulled back by that digest, as a node would pull it.
    let pulled = work.0.join("pulled");
    run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{pinned}"),
        &format!("oci:{}:pulled", pulled.display()),
    ]));
    // And the tag the Helm chart composes (image.repository=<REGISTRY>/pinot-operator, tag = appVersion).
    let by_tag: Value = serde_json::from_str(&run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{registry}/pinot-operator:{VERSION}"),
    ])))
    .unwrap();
    assert_eq!(by_tag["Digest"], digest.as_str());

    let index = read_json(&pulled.join("index.json"));
    let manifest = read_json(&blob(&pulled, index["manifests"][0]["digest"].as_str().unwrap()));
    let config = read_json(&blob(&pulled, manifest["config"]["digest"].as_str().unwrap()));
    println!("the pulled image's configuration: {config:#}");

    // What `docker inspect` / `crane config` would show.
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], architecture());
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532", "runs as nonroot, as the chart's runAsNonRoot requires");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/local/bin/pinot-operator"]));
    assert_eq!(c["Cmd"], serde_json::json!(["run"]));
    assert_eq!(c["WorkingDir"], "/");
    let labels = &c["Labels"];
    let revision = run(Command::new("git").args(["rev-parse", "HEAD"]).current_dir(repo_root()));
    assert_eq!(labels["org.opencontainers.image.title"], "pinot-operator");
    assert_eq!(labels["org.opencontainers.image.version"], VERSION);
    assert_eq!(labels["org.opencontainers.image.revision"], revision.trim());
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    assert!(labels["org.opencontainers.image.source"].as_str().unwrap().starts_with("https://"), "{labels}");
    assert!(!labels["org.opencontainers.image.description"].as_str().unwrap().is_empty(), "{labels}");

    // The size a registry stores and a node downloads.
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one layer, FROM scratch: {manifest}");
    assert_eq!(layers[0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    let compressed: u64 =
        manifest["config"]["size"].as_u64().unwrap() + layers.iter().map(|l| l["size"].as_u64().unwrap()).sum::<u64>();
    println!(
        "image: {compressed} bytes compressed ({:.1} MiB); the binary: {binary_size} bytes ({:.1} MiB)",
        compressed as f64 / MIB as f64,
        binary_size as f64 / MIB as f64
    );
    assert!(
        compressed <= binary_size + 20 * MIB,
        "the image ({compressed} B) is at most the binary ({binary_size} B) + 20 MiB"
    );

    // The layer's files, as a runtime unpacks them.
    let layer = blob(&pulled, layers[0]["digest"].as_str().unwrap());
    let listing = run(Command::new("tar").arg("--numeric-owner").arg("-tvzf").arg(&layer));
    let entry = |name: &str| {
        listing
            .lines()
            .find(|l| {
                l.split_whitespace().last().map(|n| n.trim_start_matches("./").trim_end_matches('/')) == Some(name)
            })
            .unwrap_or_else(|| panic!("{name} is not in the layer:\n{listing}"))
            .to_string()
    };
    let tmp = entry("tmp");
    assert!(tmp.starts_with("drwxrwxrwt"), "/tmp is 1777: {tmp}");
    let home = entry("home/nonroot");
    assert!(home.contains(" 65532/65532 "), "/home/nonroot is nonroot's: {home}");
    for root_owned in ["usr/local/bin/pinot-operator", "etc/passwd", "etc/ssl/certs/ca-certificates.crt"] {
        let line = entry(root_owned);
        assert!(line.contains(" 0/0 "), "{root_owned} belongs to root (not writable by the operator): {line}");
    }
    let rootfs = work.0.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    run(Command::new("tar")
        .args(["--extract", "--gzip", "--no-same-owner", "--preserve-permissions", "--file"])
        .arg(&layer)
        .arg("--directory")
        .arg(&rootfs));

    let in_image = resolve_in(&rootfs, "/usr/local/bin/pinot-operator");
    assert!(
        same_content(&in_image, &binary),
        "the image's /usr/local/bin/pinot-operator is the binary given to build.sh"
    );
    let passwd = std::fs::read_to_string(resolve_in(&rootfs, "/etc/passwd")).unwrap();
    assert!(passwd.lines().any(|l| l.starts_with("nonroot:x:65532:65532:")), "/etc/passwd: {passwd}");
    let group = std::fs::read_to_string(resolve_in(&rootfs, "/etc/group")).unwrap();
    assert!(group.lines().any(|l| l.starts_with("nonroot:x:65532:")), "/etc/group: {group}");
    let cas = std::fs::read_to_string(resolve_in(&rootfs, "/etc/ssl/certs/ca-certificates.crt")).unwrap();
    let ca_count = cas.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(ca_count > 50, "the CA bundle has the public CAs: {ca_count} certificates");
    let interpreter = elf_interpreter(&binary);
    let loader = resolve_in(&rootfs, &interpreter);
    assert!(loader.is_file(), "the binary's loader {interpreter} is in the image ({})", loader.display());

    // The loader and libraries of the image suffice: the loader of the image resolves every
    // library inside the image's root filesystem, and runs the binary.
    let dirs = library_dirs(&rootfs);
    let library_path = std::env::join_paths(&dirs).unwrap();
    let listed = run(Command::new(&loader).arg("--library-path").arg(&library_path).arg("--list").arg(&in_image));
    println!("{} --list:\n{listed}", interpreter);
    for line in listed.lines().filter(|l| l.contains("=>")) {
        let resolved = line.split("=>").nth(1).unwrap().split_whitespace().next().unwrap_or_default();
        assert!(Path::new(resolved).starts_with(&rootfs), "every library comes from the image: {line}");
    }
    let version = run(Command::new(&loader).arg("--library-path").arg(&library_path).arg(&in_image).arg("--version"));
    assert_eq!(version.trim(), format!("pinot-operator {VERSION}"));

    // As a runtime runs it: chrooted into the image, as 65532, with nothing of this machine's
    // (no --library-path, no ld.so.cache: the loader's own search path).
    let chrooted = if is_root() {
        Command::new("chroot")
            .arg("--userspec=65532:65532")
            .arg(&rootfs)
            .args(["/usr/local/bin/pinot-operator", "--version"])
            .output()
    } else {
        Command::new("unshare")
            .args(["--user", "--map-root-user", "chroot"])
            .arg(&rootfs)
            .args(["/usr/local/bin/pinot-operator", "--version"])
            .output()
    }
    .unwrap();
    assert!(
        chrooted.status.success(),
        "the binary runs chrooted into the image (as root, or in a user namespace): {}",
        String::from_utf8_lossy(&chrooted.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&chrooted.stdout).trim(), format!("pinot-operator {VERSION}"));

    // make push to a registry with TLS of its own CA and basic auth, under another tag.
    let secure = LocalRegistry::start(
        "image-secure",
        RegistryOptions { tls: true, basic_auth: Some(("pusher".into(), "s3cret: with spaces".into())) },
    )
    .await;
    let ca_dir = work.0.join("ca");
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::copy(secure.ca_file().unwrap(), ca_dir.join("ca.crt")).unwrap();
    // Without credentials (an auth file with none) the registry refuses, and push.sh fails.
    std::fs::write(work.0.join("no-auth.json"), "{\"auths\": {}}").unwrap();
    let refused = script("push.sh")
        .env("PINOT_IMAGE_LAYOUT", &layout)
        .env("REGISTRY", &secure.host)
        .env("REGISTRY_CA_DIR", &ca_dir)
        .env("REGISTRY_AUTH_FILE", work.0.join("no-auth.json"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a push without credentials fails");
    assert!(stderr.contains("authentication required"), "refused by the registry, over TLS: {stderr}");
    let pushed = run(script("push.sh")
        .env("PINOT_IMAGE_LAYOUT", &layout)
        .env("REGISTRY", &secure.host)
        .env("IMAGE_TAG", "candidate")
        .env("REGISTRY_CA_DIR", &ca_dir)
        .env("REGISTRY_USERNAME", "pusher")
        .env("REGISTRY_PASSWORD", "s3cret: with spaces"));
    assert_eq!(last_line(&pushed), format!("{}/pinot-operator@{digest}", secure.host), "{pushed}");
    let inspected: Value = serde_json::from_str(&run(Command::new("skopeo").args([
        "inspect",
        "--cert-dir",
        ca_dir.to_str().unwrap(),
        "--creds",
        "pusher:s3cret: with spaces",
        &format!("docker://{}/pinot-operator:candidate", secure.host),
    ])))
    .unwrap();
    assert_eq!(inspected["Digest"], digest.as_str());
    assert_eq!(inspected["Labels"]["org.opencontainers.image.version"], VERSION);
}
