//! PinotPolicy modules from OCI registries, on the real apiserver and real registries on
//! loopback (Debian's `docker-registry`): pulled by digest, cached by digest, with a pull
//! secret over TLS; every bad input (no digest, unknown digest, a digest the module does not
//! match, not a Wasm artifact, not a component, over the size limit, registry down, wrong or
//! missing credentials) is a Rejected status with its reason while the last good module stays
//! active; `pinot-operator policy push` / `pull` as a user runs them.

use std::{collections::BTreeMap, path::Path, time::Duration};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use oci_client::{
    Reference,
    client::{ClientConfig, ClientProtocol, Config, ImageLayer},
    secrets::RegistryAuth,
};
use pinot_crds::{PinotPolicy, PinotPolicyStatus};
use pinot_operator::{
    policy::{
        bundled,
        oci::{PinnedReference, Registries, RegistrySettings, WASM_LAYER_MEDIA_TYPE},
        runtime::digest,
        signature::{self, SecretKey},
    },
    policy_controller::PolicySources,
};
use pinot_testbed::{
    harness::{OperatorHandle, TestNamespace, operator_binary, test_client, wait_for},
    registry::{LocalRegistry, RegistryOptions},
};
use serde_json::json;

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(bundled::WASM_DIR).join(name)).unwrap()
}

async fn status_of(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    check: impl Fn(&PinotPolicyStatus) -> bool,
) -> PinotPolicyStatus {
    let api: Api<PinotPolicy> = Api::namespaced(client.clone(), ns);
    wait_for(what, Duration::from_secs(60), || async {
        let p = api.get(name).await.ok()?;
        let s = p.status?;
        (s.observed_generation == p.metadata.generation && check(&s)).then_some(s)
    })
    .await
}

async fn rejected_with(client: &Client, ns: &str, name: &str, reason: &str) -> PinotPolicyStatus {
    let s = status_of(client, ns, name, reason, |s| s.reason.as_deref() == Some(reason)).await;
    assert_eq!(s.phase.as_deref(), Some("Rejected"));
    s
}

async fn set_module(client: &Client, ns: &str, name: &str, module: serde_json::Value) {
    let api: Api<PinotPolicy> = Api::namespaced(client.clone(), ns);
    let policy: PinotPolicy = serde_json::from_value(json!({
        "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotPolicy",
        "metadata": {"name": name},
        "spec": {"kind": "upgrade", "module": module["module"], "sha256": module.get("sha256"),
                 "config": module.get("config").cloned().unwrap_or(json!({}))},
    }))
    .unwrap();
    api.patch(name, &PatchParams::apply("pinot-tests").force(), &Patch::Apply(&policy)).await.unwrap();
}

fn oci(reference: &str) -> serde_json::Value {
    json!({"module": {"oci": {"reference": reference}}})
}

/// Pushes an artifact with arbitrary layers, as another tool might (a container image, a
/// Wasm layer that is not a component).
async fn push_raw(registry: &LocalRegistry, repository: &str, layer: ImageLayer) -> String {
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(vec![registry.host.clone()]),
        ..Default::default()
    });
    let reference: Reference = format!("{}/{repository}:raw", registry.host).parse().unwrap();
    let config = Config::new(b"{}".to_vec(), "application/vnd.oci.image.config.v1+json".into(), None);
    client.push(&reference, &[layer], config, &RegistryAuth::Anonymous, None).await.unwrap();
    // What `push` sent is the canonical form; read the digest back by tag.
    let (raw, _) = client
        .pull_manifest_raw(&reference, &RegistryAuth::Anonymous, &["application/vnd.oci.image.manifest.v1+json"])
        .await
        .unwrap();
    format!("{}/{repository}@{}", registry.host, digest(&raw))
}

async fn push(registry: &LocalRegistry, auth: &RegistryAuth, reference: &str, module: Vec<u8>) -> String {
    Registries::new(registry.settings())
        .unwrap()
        .push(&format!("{}/{reference}", registry.host), module, BTreeMap::new(), auth)
        .await
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn oci_modules_load_by_digest_and_every_bad_input_keeps_the_last_good_module() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "policy-oci").await;
    let mut registry = LocalRegistry::start("plain", RegistryOptions::default()).await;
    let limit = 1 << 20;
    let settings = RegistrySettings { max_module_bytes: limit, retry: Duration::from_secs(2), ..registry.settings() };
    let controller = OperatorHandle::start_with_sources(
        &client,
        &ns.name,
        PolicySources { registries: settings, ..Default::default() },
    );
    let good = wasm("pinot_upgrade_default.wasm");
    let other = wasm("pinot_upgrade_zone_at_a_time.wasm");
    let anonymous = RegistryAuth::Anonymous;
    let good_ref = push(&registry, &anonymous, "pinot/upgrade:1.0", good.clone()).await;
    let other_ref = push(&registry, &anonymous, "pinot/upgrade:1.1", other.clone()).await;

    set_module(&client, &ns.name, "team-upgrade", oci(&good_ref)).await;
    let ready = status_of(&client, &ns.name, "team-upgrade", "Ready", |s| s.phase.as_deref() == Some("Ready")).await;
    assert_eq!(ready.digest, Some(digest(&good)), "the module's own digest");
    assert_eq!(ready.artifact.as_deref(), Some(good_ref.as_str()), "the artifact it came from");
    assert_eq!(ready.policy_name.as_deref(), Some("upgrade-default"));
    let still_good = |s: &PinotPolicyStatus| {
        assert_eq!(s.digest, Some(digest(&good)), "the last good module stays active: {s:?}");
        assert_eq!(s.artifact.as_deref(), Some(good_ref.as_str()), "{s:?}");
        assert!(s.message.as_deref().unwrap_or_default().contains("stays active"), "{s:?}");
        assert_eq!(controller.registry().get(&ns.name, "team-upgrade").unwrap().policy.digest, digest(&good));
    };

    // A tag alone: refused before anything is pulled, naming the field.
    set_module(&client, &ns.name, "team-upgrade", oci(&format!("{}/pinot/upgrade:1.1", registry.host))).await;
    let s = rejected_with(&client, &ns.name, "team-upgrade", "DigestRequired").await;
    assert!(s.message.as_deref().unwrap().contains("spec.module.oci.reference"), "{s:?}");
    still_good(&s);

    // A digest the registry does not have.
    let unknown = format!("{}/pinot/upgrade@{}", registry.host, digest(b"nothing"));
    set_module(&client, &ns.name, "team-upgrade", oci(&unknown)).await;
    still_good(&rejected_with(&client, &ns.name, "team-upgrade", "ArtifactNotFound").await);

    // The reviewed digest (spec.sha256) is not the artifact's module.
    set_module(
        &client,
        &ns.name,
        "team-upgrade",
        json!({"module": {"oci": {"reference": other_ref}}, "sha256": digest(&good)}),
    )
    .await;
    still_good(&rejected_with(&client, &ns.name, "team-upgrade", "DigestMismatch").await);

    // A container image is not a policy.
    let image = push_raw(
        &registry,
        "pinot/image",
        ImageLayer::new(b"not a tarball".to_vec(), "application/vnd.oci.image.layer.v1.tar+gzip".into(), None),
    )
    .await;
    set_module(&client, &ns.name, "team-upgrade", oci(&image)).await;
    let s = rejected_with(&client, &ns.name, "team-upgrade", "NotAWasmArtifact").await;
    assert!(s.message.as_deref().unwrap().contains("tar+gzip"), "{s:?}");
    still_good(&s);

    // A Wasm layer whose bytes are not a component.
    let junk = push_raw(
        &registry,
        "pinot/junk",
        ImageLayer::new(b"\0asm\x01\0\0\0junk".to_vec(), WASM_LAYER_MEDIA_TYPE.into(), None),
    )
    .await;
    set_module(&client, &ns.name, "team-upgrade", oci(&junk)).await;
    still_good(&rejected_with(&client, &ns.name, "team-upgrade", "DoesNotCompile").await);

    // Over the operator's limit: refused on the manifest's word, before the download.
    let mut big = good.clone();
    big.resize(limit as usize + 1, 0);
    let big_ref = push(&registry, &anonymous, "pinot/big:1.0", big).await;
    set_module(&client, &ns.name, "team-upgrade", oci(&big_ref)).await;
    let s = rejected_with(&client, &ns.name, "team-upgrade", "ModuleTooLarge").await;
    assert!(s.message.as_deref().unwrap().contains(&limit.to_string()), "{s:?}");
    still_good(&s);

    // The registry goes down while the policy names a new module: Rejected, retried, and the
    // module loads once the registry is back, with no change to the policy.
    registry.stop().await;
    set_module(&client, &ns.name, "team-upgrade", oci(&other_ref)).await;
    let s = rejected_with(&client, &ns.name, "team-upgrade", "RegistryUnavailable").await;
    assert!(s.message.as_deref().unwrap().contains(&registry.host), "{s:?}");
    still_good(&s);
    registry.resume().await;
    let back =
        status_of(&client, &ns.name, "team-upgrade", "the new module Ready", |s| s.digest == Some(digest(&other)))
            .await;
    assert_eq!(back.phase.as_deref(), Some("Ready"));
    assert_eq!(back.artifact.as_deref(), Some(other_ref.as_str()));
    controller.stop().await;
}

#[tokio::test]
async fn oci_modules_over_tls_with_a_pull_secret_and_from_the_cache_while_the_registry_is_down() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "policy-oci-auth").await;
    let credentials = ("pinot".to_string(), "s3cret-pinot".to_string());
    let mut registry =
        LocalRegistry::start("auth", RegistryOptions { tls: true, basic_auth: Some(credentials.clone()) }).await;
    let cache = std::env::temp_dir().join(format!("pinot-oci-cache-{}", ns.name));
    let _ = std::fs::remove_dir_all(&cache);
    let settings =
        RegistrySettings { cache_dir: Some(cache.clone()), retry: Duration::from_secs(2), ..registry.settings() };
    let controller = OperatorHandle::start_with_sources(
        &client,
        &ns.name,
        PolicySources { registries: settings, ..Default::default() },
    );
    let module = wasm("pinot_upgrade_zone_at_a_time.wasm");
    let auth = RegistryAuth::Basic(credentials.0.clone(), credentials.1.clone());
    let reference = push(&registry, &auth, "team/zone:1.0", module.clone()).await;
    assert!(
        Registries::new(registry.settings())
            .unwrap()
            .push(
                &format!("{}/team/zone:1.0", registry.host),
                module.clone(),
                BTreeMap::new(),
                &RegistryAuth::Anonymous
            )
            .await
            .is_err(),
        "the registry refuses anonymous pushes"
    );

    // No pull secret: the registry refuses.
    set_module(&client, &ns.name, "zone", oci(&reference)).await;
    let s = rejected_with(&client, &ns.name, "zone", "RegistryUnauthorized").await;
    assert!(s.message.as_deref().unwrap().contains("pullSecret"), "{s:?}");

    // A pull secret that does not exist, then one with the wrong password.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let with_secret = |name: &str| json!({"module": {"oci": {"reference": reference, "pullSecret": name}}});
    set_module(&client, &ns.name, "zone", with_secret("registry-credentials")).await;
    let s = rejected_with(&client, &ns.name, "zone", "RegistryUnauthorized").await;
    assert!(s.message.as_deref().unwrap().contains("does not exist"), "{s:?}");
    let wrong = json!({"auths": {&registry.host: {"username": "pinot", "password": "wrong"}}});
    let secret = |name: &str, config: Vec<u8>| Secret {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(BTreeMap::from([(".dockerconfigjson".to_string(), ByteString(config))])),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret("wrong-credentials", serde_json::to_vec(&wrong).unwrap()))
        .await
        .unwrap();
    set_module(&client, &ns.name, "zone", with_secret("wrong-credentials")).await;
    rejected_with(&client, &ns.name, "zone", "RegistryUnauthorized").await;

    // The right credentials, over TLS with the registry's CA: Ready.
    secrets
        .create(&PostParams::default(), &secret("registry-credentials", registry.docker_config_json()))
        .await
        .unwrap();
    set_module(&client, &ns.name, "zone", with_secret("registry-credentials")).await;
    let ready = status_of(&client, &ns.name, "zone", "Ready", |s| s.phase.as_deref() == Some("Ready")).await;
    assert_eq!(ready.digest, Some(digest(&module)));
    assert_eq!(ready.artifact.as_deref(), Some(reference.as_str()));
    // One directory per registry repository and credentials, holding the manifest and the
    // module by digest.
    let scopes: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(scopes.len(), 1, "{scopes:?}");
    let cached: Vec<_> = std::fs::read_dir(&scopes[0]).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(cached.len(), 2, "the manifest and the module are cached by digest: {cached:?}");

    // Another policy naming the same artifact without the credentials does not get it from the
    // cache the first one filled.
    set_module(&client, &ns.name, "freeloader", oci(&reference)).await;
    rejected_with(&client, &ns.name, "freeloader", "RegistryUnauthorized").await;

    // The registry is down; the policy changes (its configuration): the module comes from the
    // cache, checked against both digests.
    registry.stop().await;
    let mut changed = with_secret("registry-credentials");
    changed["config"] = json!({"podReadyTimeoutSeconds": "120"});
    set_module(&client, &ns.name, "zone", changed).await;
    status_of(&client, &ns.name, "zone", "Ready with the new configuration", |s| s.phase.as_deref() == Some("Ready"))
        .await;
    wait_for("the configuration applied", Duration::from_secs(30), || async {
        let active = controller.registry().get(&ns.name, "zone")?;
        (active.config == vec![("podReadyTimeoutSeconds".to_string(), "120".to_string())]).then_some(())
    })
    .await;
    controller.stop().await;
    let _ = std::fs::remove_dir_all(&cache);
}

/// Runs `pinot-operator` with `args`, `stdin` on its standard input; (success, stdout, stderr).
async fn cli(args: &[&str], stdin: &str) -> (bool, String, String) {
    cli_env(args, stdin, &[]).await
}

/// As [`cli`], with environment variables.
async fn cli_env(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(operator_binary())
        .args(args)
        .envs(env.iter().copied())
        .env("HOME", std::env::temp_dir().join("pinot-oci-cli-home"))
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[tokio::test]
async fn policy_push_and_pull_as_a_user_runs_them() {
    let (user, password) = ("pinot".to_string(), "s3cret-cli".to_string());
    let registry =
        LocalRegistry::start("cli", RegistryOptions { tls: true, basic_auth: Some((user.clone(), password.clone())) })
            .await;
    let module = Path::new(bundled::WASM_DIR).join("pinot_upgrade_zone_at_a_time.wasm");
    let ca = registry.ca_file().unwrap();
    let ca = ca.to_str().unwrap();
    let target = format!("{}/team/zone:1.0", registry.host);
    let file = module.to_str().unwrap();

    // Without credentials the registry refuses, and push says so.
    let (ok, _, err) = cli(&["policy", "push", file, &target, "--ca-file", ca], "").await;
    assert!(!ok);
    assert!(err.contains("refused the credentials"), "{err}");
    // Without the CA the certificate is not trusted.
    let (ok, _, err) =
        cli(&["policy", "push", file, &target, "--username", &user, "--password-stdin"], &password).await;
    assert!(!ok);
    assert!(err.contains("cannot be reached") && err.to_lowercase().contains("certificate"), "{err}");
    // A file that is not a policy is refused before anything is sent.
    let junk = std::env::temp_dir().join("pinot-oci-cli-junk.wasm");
    std::fs::write(&junk, b"\0asm\x01\0\0\0junk").unwrap();
    let (ok, _, err) = cli(
        &["policy", "push", junk.to_str().unwrap(), &target, "--ca-file", ca, "--username", &user, "--password-stdin"],
        &password,
    )
    .await;
    assert!(!ok);
    assert!(err.contains("does not compile"), "{err}");

    let (ok, out, err) = cli(
        &["policy", "push", file, &target, "--ca-file", ca, "--username", &user, "--password-stdin"],
        &format!("{password}\n"),
    )
    .await;
    assert!(ok, "{err}");
    let pinned = out.lines().last().unwrap().to_string();
    assert!(pinned.starts_with(&format!("{}/team/zone@sha256:", registry.host)), "{out}");
    assert!(out.contains("upgrade-zone-at-a-time"), "{out}");

    // Pull by the printed reference, with the credentials of `docker login` (config.json).
    let home = std::env::temp_dir().join("pinot-oci-cli-home");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    std::fs::write(home.join(".docker/config.json"), registry.docker_config_json()).unwrap();
    let pulled = std::env::temp_dir().join("pinot-oci-cli-pulled.wasm");
    let (ok, out, err) = cli(&["policy", "pull", &pinned, "-o", pulled.to_str().unwrap(), "--ca-file", ca], "").await;
    assert!(ok, "{err}");
    assert!(out.contains(&digest(&std::fs::read(&module).unwrap())), "{out}");
    assert_eq!(std::fs::read(&pulled).unwrap(), std::fs::read(&module).unwrap());
    // A tag is not a pinned reference.
    let (ok, _, err) = cli(&["policy", "pull", &target, "-o", pulled.to_str().unwrap(), "--ca-file", ca], "").await;
    assert!(!ok);
    assert!(err.contains("does not pin a digest"), "{err}");
    let _ = std::fs::remove_dir_all(&home);
}

/// Signs the artifact `reference` with `key`, as `policy sign` does.
async fn sign(registry: &LocalRegistry, auth: &RegistryAuth, reference: &str, key: &SecretKey) {
    let pinned = PinnedReference::parse("test", reference).unwrap();
    let payload = signature::payload(&pinned.repository_name(), &pinned.digest);
    let layer = signature::SignatureLayer { signature: key.sign(&payload), payload };
    Registries::new(registry.settings()).unwrap().push_signature(&pinned, layer, auth).await.unwrap();
}

#[tokio::test]
async fn with_trusted_keys_only_modules_signed_by_one_of_them_load() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "policy-signed").await;
    let registry = LocalRegistry::start("signed", RegistryOptions::default()).await;
    let keys_dir = std::env::temp_dir().join(format!("pinot-trusted-keys-{}", ns.name));
    let _ = std::fs::remove_dir_all(&keys_dir);
    std::fs::create_dir_all(&keys_dir).unwrap();
    let (team, stranger, late) = (SecretKey::generate(), SecretKey::generate(), SecretKey::generate());
    std::fs::write(keys_dir.join("team.pub"), team.public().to_pem()).unwrap();
    std::fs::write(keys_dir.join("..data"), "a mounted ConfigMap's bookkeeping, not a key").unwrap();
    let sources = PolicySources {
        registries: RegistrySettings { retry: Duration::from_secs(2), ..registry.settings() },
        trusted_keys: Some(keys_dir.clone()),
        ..Default::default()
    };
    let controller = OperatorHandle::start_with_sources(&client, &ns.name, sources);
    let anonymous = RegistryAuth::Anonymous;
    let good = wasm("pinot_upgrade_default.wasm");
    let other = wasm("pinot_upgrade_zone_at_a_time.wasm");
    let signed = push(&registry, &anonymous, "team/upgrade:1.0", good.clone()).await;
    let unsigned = push(&registry, &anonymous, "team/upgrade:1.1", other.clone()).await;
    sign(&registry, &anonymous, &signed, &team).await;

    set_module(&client, &ns.name, "upgrade", oci(&signed)).await;
    let ready = status_of(&client, &ns.name, "upgrade", "Ready", |s| s.phase.as_deref() == Some("Ready")).await;
    assert_eq!(ready.signed_by.as_deref(), Some("team.pub"));
    assert_eq!(ready.digest, Some(digest(&good)));

    // Unsigned: rejected, the signed module stays.
    set_module(&client, &ns.name, "upgrade", oci(&unsigned)).await;
    let s = rejected_with(&client, &ns.name, "upgrade", "Unsigned").await;
    assert!(s.message.as_deref().unwrap().contains(".sig"), "{s:?}");
    assert_eq!(s.digest, Some(digest(&good)));
    assert_eq!(s.signed_by.as_deref(), Some("team.pub"), "the active module's signer");

    // Signed by a key nobody trusts.
    sign(&registry, &anonymous, &unsigned, &stranger).await;
    let s = rejected_with(&client, &ns.name, "upgrade", "SignatureNotTrusted").await;
    assert!(s.message.as_deref().unwrap().contains("team.pub"), "{s:?}");
    assert_eq!(s.digest, Some(digest(&good)));

    // A ConfigMap module is refused outright while signatures are required.
    set_module(
        &client,
        &ns.name,
        "from-configmap",
        json!({"module": {"configMap": {"name": "m", "key": "m.wasm"}}, "sha256": digest(&good)}),
    )
    .await;
    rejected_with(&client, &ns.name, "from-configmap", "SignatureRequired").await;

    // The admin trusts a new key (a file appears in the mounted directory) and the module is
    // signed with it: it loads without a change to the policy.
    sign(&registry, &anonymous, &unsigned, &late).await;
    std::fs::write(keys_dir.join("late.pub"), late.public().to_pem()).unwrap();
    let s =
        status_of(&client, &ns.name, "upgrade", "Ready with the late key", |s| s.digest == Some(digest(&other))).await;
    assert_eq!(s.signed_by.as_deref(), Some("late.pub"));

    // The admin revokes that key: the module it vouched for is taken out of service, not kept
    // as "the last good one".
    std::fs::remove_file(keys_dir.join("late.pub")).unwrap();
    let s = rejected_with(&client, &ns.name, "upgrade", "SignatureNotTrusted").await;
    assert_eq!(s.digest, None, "{s:?}");
    assert!(s.message.as_deref().unwrap().contains("unloaded"), "{s:?}");
    assert!(controller.registry().get(&ns.name, "upgrade").is_none());
    controller.stop().await;
    let _ = std::fs::remove_dir_all(&keys_dir);
}

#[tokio::test]
async fn policy_keygen_sign_and_verify_as_a_user_runs_them() {
    let registry = LocalRegistry::start("sign-cli", RegistryOptions::default()).await;
    let dir = std::env::temp_dir().join(format!("pinot-sign-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let module = Path::new(bundled::WASM_DIR).join("pinot_upgrade_zone_at_a_time.wasm");
    let (ok, out, err) = cli(
        &["policy", "push", module.to_str().unwrap(), &format!("{}/team/zone:1.0", registry.host), "--insecure"],
        "",
    )
    .await;
    assert!(ok, "{err}");
    let pinned = out.lines().last().unwrap().to_string();
    let path = |f: &str| dir.join(f).to_str().unwrap().to_string();

    // A key pair as cosign makes one; the private key is only its owner's.
    let (ok, _, err) =
        cli_env(&["policy", "keygen", "--output-key-prefix", &path("team")], "", &[("COSIGN_PASSWORD", "pw")]).await;
    assert!(ok, "{err}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(path("team.key")).unwrap().permissions().mode() & 0o777, 0o600);
    std::fs::write(path("cosign.key"), signature::test_vectors::SIGSTORE_LABEL_KEY).unwrap();
    std::fs::write(path("cosign.pub"), signature::test_vectors::SIGSTORE_LABEL_PUB).unwrap();

    let verify = |keys: Vec<String>| {
        let mut args = vec!["policy".to_string(), "verify".into(), pinned.clone(), "--insecure".into()];
        for k in keys {
            args.extend(["--key".to_string(), k]);
        }
        async move { cli(&args.iter().map(String::as_str).collect::<Vec<_>>(), "").await }
    };
    let (ok, _, err) = verify(vec![path("team.pub")]).await;
    assert!(!ok && err.contains("is not signed"), "{err}");

    // A wrong password is refused before anything is pushed.
    let (ok, _, err) = cli_env(
        &["policy", "sign", &pinned, "--key", &path("team.key"), "--insecure"],
        "",
        &[("COSIGN_PASSWORD", "not-pw")],
    )
    .await;
    assert!(!ok && err.contains("password"), "{err}");
    let (ok, out, err) = cli_env(
        &["policy", "sign", &pinned, "--key", &path("team.key"), "--insecure"],
        "",
        &[("COSIGN_PASSWORD", "pw")],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains(".sig"), "{out}");
    let (ok, out, err) = verify(vec![path("cosign.pub"), path("team.pub")]).await;
    assert!(ok, "{err}");
    assert!(out.contains("signed by") && out.contains("team.pub"), "{out}");
    let (ok, _, err) = verify(vec![path("cosign.pub")]).await;
    assert!(!ok && err.contains("another key"), "{err}");

    // cosign's own key signs too (a second signature beside the first), and verifies.
    let (ok, _, err) = cli_env(
        &["policy", "sign", &pinned, "--key", &path("cosign.key"), "--insecure"],
        "",
        &[("COSIGN_PASSWORD", "hello")],
    )
    .await;
    assert!(ok, "{err}");
    let (ok, _, err) = verify(vec![path("cosign.pub")]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = verify(vec![path("team.pub")]).await;
    assert!(ok, "the first signature stays: {err}");
    let layers = Registries::new(registry.settings())
        .unwrap()
        .signatures(&PinnedReference::parse("t", &pinned).unwrap(), &RegistryAuth::Anonymous)
        .await
        .unwrap();
    assert_eq!(layers.len(), 2, "one layer per signature, in one manifest");
    let _ = std::fs::remove_dir_all(&dir);
}
