//! A real OCI registry on loopback for the tests: Debian's `docker-registry` (the CNCF
//! distribution registry, 2.8), started per test with its own storage, optionally with TLS
//! (a CA and a certificate for 127.0.0.1 made with `openssl`) and basic auth (an htpasswd file
//! of bcrypt hashes, the only kind the registry reads). It can be stopped and started again on
//! the same port and storage, to be a registry that is down for a while.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use pinot_operator::policy::oci::RegistrySettings;

/// How a test registry is set up.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Serve HTTPS with a certificate of a CA of its own ([`LocalRegistry::ca_pem`]).
    pub tls: bool,
    /// Require these credentials (basic auth).
    pub basic_auth: Option<(String, String)>,
}

pub struct LocalRegistry {
    /// `127.0.0.1:<port>`, the registry part of references.
    pub host: String,
    pub options: RegistryOptions,
    dir: PathBuf,
    child: Option<tokio::process::Child>,
}

fn binary() -> PathBuf {
    let path = std::env::var_os("PINOT_TEST_REGISTRY_BIN").map(PathBuf::from).unwrap_or("docker-registry".into());
    if std::process::Command::new(&path).arg("--version").output().is_err() {
        panic!(
            "the OCI registry `{}` is not installed: `apt-get install docker-registry` (make test and make kube-up install it)",
            path.display()
        );
    }
    path
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl LocalRegistry {
    /// Starts a registry on a free loopback port and waits until it answers.
    pub async fn start(name: &str, options: RegistryOptions) -> Self {
        let dir = std::env::temp_dir().join(format!("pinot-test-registry-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let host = format!("127.0.0.1:{port}");
        let mut http = format!("  addr: {host}\n");
        if options.tls {
            openssl(
                &dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=pinot-test-registry-ca",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                ],
            );
            openssl(
                &dir,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-keyout",
                    "tls.key",
                    "-out",
                    "tls.csr",
                ],
            );
            std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
            openssl(
                &dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    "tls.csr",
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    "san.ext",
                    "-out",
                    "tls.crt",
                ],
            );
            http.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.join("tls.crt").display(),
                dir.join("tls.key").display()
            ));
        }
        let mut auth = String::new();
        if let Some((user, password)) = &options.basic_auth {
            let hash = bcrypt::hash(password, 5).unwrap();
            std::fs::write(dir.join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
            auth =
                format!("auth:\n  htpasswd:\n    realm: pinot-tests\n    path: {}\n", dir.join("htpasswd").display());
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n{http}{auth}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let mut registry = LocalRegistry { host, options, dir, child: None };
        registry.resume().await;
        registry
    }

    /// The CA the registry's certificate is signed by (with TLS).
    pub fn ca_pem(&self) -> Option<Vec<u8>> {
        self.options.tls.then(|| std::fs::read(self.dir.join("ca.crt")).unwrap())
    }

    /// The CA's file (with TLS), for `--ca-file`.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.options.tls.then(|| self.dir.join("ca.crt"))
    }

    /// How the operator reaches this registry: plain HTTP, or trusting its CA.
    pub fn settings(&self) -> RegistrySettings {
        RegistrySettings {
            insecure: if self.options.tls { vec![] } else { vec![self.host.clone()] },
            extra_roots_pem: self.ca_pem().into_iter().collect(),
            ..RegistrySettings::default()
        }
    }

    /// A `kubernetes.io/dockerconfigjson` payload with this registry's credentials.
    pub fn docker_config_json(&self) -> Vec<u8> {
        let (user, password) = self.options.basic_auth.clone().unwrap_or_default();
        serde_json::to_vec(&serde_json::json!({"auths": {&self.host: {"username": user, "password": password}}}))
            .unwrap()
    }

    /// Stops the registry (its storage stays).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the registry again on the same port and storage, and waits until it answers.
    pub async fn resume(&mut self) {
        let child = tokio::process::Command::new(binary())
            .arg("serve")
            .arg(self.dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("registry.log")).map(Stdio::from).unwrap_or(Stdio::null()))
            .kill_on_drop(true)
            .spawn()
            .expect("docker-registry starts");
        self.child = Some(child);
        let scheme = if self.options.tls { "https" } else { "http" };
        let url = format!("{scheme}://{}/v2/", self.host);
        let mut client = reqwest::Client::builder();
        if let Some(ca) = self.ca_pem() {
            client = client.tls_certs_merge([reqwest::Certificate::from_pem(&ca).unwrap()]);
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = client.build().unwrap();
        for _ in 0..100 {
            // 401 is an answer too (basic auth).
            if client.get(&url).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
        panic!("the registry on {} did not answer in 10 s: {log}", self.host);
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
