//! Who built a policy module: cosign-compatible signatures with keys, no Kubernetes and no
//! network here ([`super::oci`] fetches and publishes the signature artifacts).
//!
//! Compatibility with `cosign sign --key` / `cosign verify --key` (formats read from cosign's
//! source, v2.0 to v3.1.2; `host/src/policy/cosign-facts.md` has each fact and its path):
//! - keys are ECDSA P-256: the public key a PKIX `PUBLIC KEY` PEM, the private key PKCS#8
//!   encrypted as `cosign generate-key-pair` writes it (PEM `ENCRYPTED SIGSTORE PRIVATE KEY`,
//!   or `ENCRYPTED COSIGN PRIVATE KEY` before cosign 2.0.1): base64 of a JSON envelope, scrypt
//!   (N 32768/65536/131072, r 8, p 1, 32-byte salt) and NaCl secretbox (24-byte nonce);
//! - the signed payload is the "simple signing" JSON whose `critical.image.docker-manifest-digest`
//!   names the artifact's manifest digest; the signature is ASN.1 DER ECDSA over SHA-256 of the
//!   payload, base64 in the layer annotation `dev.cosignproject.cosign/signature`;
//! - verification, as `cosign verify --key`: some layer's signature verifies with a trusted
//!   key over its payload, and that payload's manifest digest is the artifact's exactly
//!   (`docker-reference` and `type` are not compared, as cosign does not).

use base64::Engine as _;
use p256::{
    ecdsa::{Signature, SigningKey, VerifyingKey, signature::Signer as _, signature::Verifier as _},
    pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding},
};

/// The media type of a simple signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation that carries the signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const PAYLOAD_TYPE: &str = "cosign container image signature";
const PEM_SIGSTORE: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
const PEM_COSIGN: &str = "ENCRYPTED COSIGN PRIVATE KEY";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not a PEM public key: {0}")]
    NotPem(String),
    #[error("only ECDSA P-256 keys are supported (the keys of `cosign generate-key-pair`): {0}")]
    Unsupported(String),
    #[error("not a cosign private key: {0}")]
    NotCosignKey(String),
    #[error("the password does not decrypt the key")]
    WrongPassword,
}

/// A public key the cluster admin trusts, with the name it is known by (its file name).
#[derive(Clone, Debug)]
pub struct TrustedKey {
    pub name: String,
    key: VerifyingKey,
}

impl TrustedKey {
    /// A PKIX `PUBLIC KEY` PEM (cosign.pub).
    pub fn from_pem(name: impl Into<String>, pem: &str) -> Result<Self, KeyError> {
        let name = name.into();
        if !pem.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(KeyError::NotPem(format!("{name}: expected -----BEGIN PUBLIC KEY-----")));
        }
        let key =
            VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| KeyError::Unsupported(format!("{name}: {e}")))?;
        Ok(TrustedKey { name, key })
    }

    pub fn to_pem(&self) -> String {
        self.key.to_public_key_pem(LineEnding::LF).unwrap_or_default()
    }
}

/// The keys of a trusted-keys directory, and what could not be read.
#[derive(Debug, Default)]
pub struct KeyRing {
    pub keys: Vec<TrustedKey>,
    pub problems: Vec<String>,
}

/// Every PEM public key in `dir` (a mounted ConfigMap or Secret: its hidden `..data` entries
/// are skipped), each named by its file name.
pub async fn read_trusted_keys(dir: &std::path::Path) -> KeyRing {
    let mut ring = KeyRing::default();
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) => {
            ring.problems.push(format!("{}: {e}", dir.display()));
            return ring;
        }
    };
    let mut files = Vec::new();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    for (name, path) in files {
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => match TrustedKey::from_pem(name.clone(), &text) {
                Ok(key) => ring.keys.push(key),
                Err(e) => ring.problems.push(e.to_string()),
            },
            Err(e) => ring.problems.push(format!("{name}: {e}")),
        }
    }
    if ring.keys.is_empty() && ring.problems.is_empty() {
        ring.problems.push(format!("{} has no key files", dir.display()));
    }
    ring
}

/// The payload cosign signs for the manifest `digest` of `repository` (`registry/repo`, no tag).
pub fn payload(repository: &str, digest: &str) -> Vec<u8> {
    // Field order and compactness as cosign writes it (Go's json.Marshal of its structs).
    #[derive(serde::Serialize)]
    struct Payload<'a> {
        critical: Critical<'a>,
        optional: Option<()>,
    }
    #[derive(serde::Serialize)]
    struct Critical<'a> {
        identity: Identity<'a>,
        image: Image<'a>,
        #[serde(rename = "type")]
        type_: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Identity<'a> {
        #[serde(rename = "docker-reference")]
        docker_reference: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Image<'a> {
        #[serde(rename = "docker-manifest-digest")]
        docker_manifest_digest: &'a str,
    }
    serde_json::to_vec(&Payload {
        critical: Critical {
            identity: Identity { docker_reference: repository },
            image: Image { docker_manifest_digest: digest },
            type_: PAYLOAD_TYPE,
        },
        optional: None,
    })
    .unwrap_or_default()
}

/// A signing key, decrypted.
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Self {
        SecretKey(SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng))
    }

    /// Decrypts a cosign private key file with `password` (`COSIGN_PASSWORD`).
    pub fn from_cosign_pem(pem: &str, password: &[u8]) -> Result<Self, KeyError> {
        let not = |m: &str| KeyError::NotCosignKey(m.to_string());
        let (label, body) = pem_body(pem).ok_or_else(|| not("no PEM block"))?;
        if label != PEM_SIGSTORE && label != PEM_COSIGN {
            return Err(not(&format!(
                "the PEM block is {label:?}, not {PEM_SIGSTORE:?} (cosign generate-key-pair, or pinot-operator policy keygen)"
            )));
        }
        let envelope: Envelope = serde_json::from_slice(&body).map_err(|e| not(&format!("its envelope: {e}")))?;
        let plain = envelope.open(password)?;
        let key = SigningKey::from_pkcs8_der(&plain)
            .map_err(|e| KeyError::Unsupported(format!("the decrypted key is not PKCS#8 P-256: {e}")))?;
        Ok(SecretKey(key))
    }

    /// The key encrypted with `password` as cosign 2.2 and later write it.
    pub fn to_cosign_pem(&self, password: &[u8]) -> String {
        let der = self.0.to_pkcs8_der().map(|d| d.as_bytes().to_vec()).unwrap_or_default();
        let envelope = Envelope::seal(&der, password);
        let json = serde_json::to_vec(&envelope).unwrap_or_default();
        pem_encode(PEM_SIGSTORE, &json)
    }

    pub fn public(&self) -> TrustedKey {
        TrustedKey { name: String::new(), key: *self.0.verifying_key() }
    }

    /// The signature of `payload`, base64 of ASN.1 DER, as the annotation carries it.
    pub fn sign(&self, payload: &[u8]) -> String {
        let signature: Signature = self.0.sign(payload);
        base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
    }
}

/// Why no signature of an artifact is accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error(
        "{artifact} is not signed (no {tag} in its repository): sign it with `pinot-operator policy sign` or `cosign sign --key`"
    )]
    Unsigned { artifact: String, tag: String },
    #[error("no signature of {artifact} verifies with a trusted key ({keys}): {reasons}")]
    Untrusted { artifact: String, keys: String, reasons: String },
}

/// One signature layer of an artifact: its payload and the base64 signature.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SignatureLayer {
    pub payload: Vec<u8>,
    pub signature: String,
}

/// The trusted key that signed the manifest `digest`: the first layer whose payload names
/// `digest` and whose signature verifies with one of `keys`.
pub fn verify<'k>(
    artifact: &str,
    digest: &str,
    layers: &[SignatureLayer],
    keys: &'k [TrustedKey],
) -> Result<&'k TrustedKey, VerifyError> {
    let mut reasons = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        match payload_digest(&layer.payload) {
            Some(d) if d == digest => {}
            Some(d) => {
                reasons.push(format!("signature {} is for {d}", i + 1));
                continue;
            }
            None => {
                reasons.push(format!("signature {} has no docker-manifest-digest", i + 1));
                continue;
            }
        }
        let Some(signature) = decode_signature(&layer.signature) else {
            reasons.push(format!("signature {} is not base64 of an ECDSA signature", i + 1));
            continue;
        };
        match keys.iter().find(|k| k.key.verify(&layer.payload, &signature).is_ok()) {
            Some(key) => return Ok(key),
            None => reasons.push(format!("signature {} is by another key", i + 1)),
        }
    }
    let keys = keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ");
    Err(VerifyError::Untrusted { artifact: artifact.to_string(), keys, reasons: reasons.join("; ") })
}

fn payload_digest(payload: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    value.pointer("/critical/image/docker-manifest-digest")?.as_str().map(str::to_string)
}

/// DER, or the raw r‖s cosign also accepts.
fn decode_signature(b64: &str) -> Option<Signature> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    Signature::from_der(&bytes).or_else(|_| Signature::from_slice(&bytes)).ok()
}

/// The tag cosign stores the signatures of manifest `digest` under.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replace(':', "-"))
}

/// go-securesystemslib's `encrypted` envelope, field names and order as cosign writes them.
#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

impl Envelope {
    fn secret(password: &[u8], salt: &[u8], n: u64, r: u32, p: u32) -> Result<[u8; 32], KeyError> {
        // cosign accepts exactly these work factors (CheckParams).
        if ![32768, 65536, 131072].contains(&n) || r != 8 || p != 1 {
            return Err(KeyError::NotCosignKey(format!("scrypt N={n} r={r} p={p} is not one cosign writes")));
        }
        let params = scrypt::Params::new(n.trailing_zeros() as u8, r, p, 32)
            .map_err(|e| KeyError::NotCosignKey(format!("scrypt: {e}")))?;
        let mut key = [0u8; 32];
        scrypt::scrypt(password, salt, &params, &mut key)
            .map_err(|e| KeyError::NotCosignKey(format!("scrypt: {e}")))?;
        Ok(key)
    }

    fn open(&self, password: &[u8]) -> Result<Vec<u8>, KeyError> {
        use crypto_secretbox::{KeyInit, XSalsa20Poly1305, aead::Aead};
        if self.kdf.name != "scrypt" || self.cipher.name != "nacl/secretbox" || self.cipher.nonce.len() != 24 {
            return Err(KeyError::NotCosignKey(format!(
                "kdf {:?} / cipher {:?}: expected scrypt and nacl/secretbox",
                self.kdf.name, self.cipher.name
            )));
        }
        let p = &self.kdf.params;
        let key = Self::secret(password, &self.kdf.salt, p.n, p.r, p.p)?;
        let nonce = crypto_secretbox::Nonce::from_slice(&self.cipher.nonce);
        XSalsa20Poly1305::new(&key.into())
            .decrypt(nonce, self.ciphertext.as_slice())
            .map_err(|_| KeyError::WrongPassword)
    }

    fn seal(plain: &[u8], password: &[u8]) -> Self {
        use crypto_secretbox::{AeadCore, KeyInit, XSalsa20Poly1305, aead::Aead, aead::OsRng};
        use p256::elliptic_curve::rand_core::RngCore as _;
        let mut salt = vec![0u8; 32];
        p256::elliptic_curve::rand_core::OsRng.fill_bytes(&mut salt);
        let (n, r, p) = (65536, 8, 1);
        let key = Self::secret(password, &salt, n, r, p).unwrap_or([0; 32]);
        let nonce = XSalsa20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = XSalsa20Poly1305::new(&key.into()).encrypt(&nonce, plain).unwrap_or_default();
        Envelope {
            kdf: Kdf { name: "scrypt".into(), params: ScryptParams { n, r, p }, salt },
            cipher: Cipher { name: "nacl/secretbox".into(), nonce: nonce.to_vec() },
            ciphertext,
        }
    }
}

mod b64 {
    use base64::Engine as _;
    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// The label and decoded body of the first PEM block of `text`.
fn pem_body(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end = rest.find(&format!("-----END {label}-----"))?;
    let body: String = rest[body_start..end].split_whitespace().collect();
    Some((label, base64::engine::general_purpose::STANDARD.decode(body).ok()?))
}

fn pem_encode(label: &str, body: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(body);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A key pair cosign made (cosign's pkg/cosign/keys_test.go `pemsigstorekey`, password `hello`;
/// the public key derived from it), for tests of cosign compatibility here and in the
/// integration tests.
#[doc(hidden)]
pub mod test_vectors {
    pub const SIGSTORE_LABEL_KEY: &str = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OCwiciI6
OCwicCI6MX0sInNhbHQiOiI3T3VGd2VsbWZZNXVId2NoaURSc210anNwZ2ZlZjFG
Mk5lOGFDTjVLYVpZPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJQNHk4OGhCb3ZTa09MbXN0bFVBaGJwdDJ0K2xTNUxQSCJ9LCJj
aXBoZXJ0ZXh0IjoiMnB1QzdyZldJOWh3bnJlQ2s4aUZDRlVwQlRrSzRJNlIvbFBF
cnBDekpXUGpJWXl4eGVIL1A2VW52cFJHdVhla1NNb3JMdGhLamdoQ1JlNy82NDVH
QWtoVm1LRC92eEF0S2EvbE1abENSQ3FlekJGUFd1dzNpeFRtZ2xhb2J1ZFVSbUVs
bmNGOGlZbzBTMVl6Y1ZOMVFwY2J2c0dNcUlYRzVlbmdteGp5dCtBcXlyZTF0Q0Y0
V01tU1BlaEljNlBqd2h1Q2xHaVpJUWRvTGc9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----";
    pub const SIGSTORE_LABEL_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7z9gA/tqa9iHt/f9F3ulyVi4lwqU
LfHWfhG2mK4eyJ8LDcLstb+VVhxj3pkMjc3fNo+sSfiIY2NLR7c+DG1V4w==
-----END PUBLIC KEY-----";
}

#[cfg(test)]
mod tests {
    //! The vectors are cosign's own (pkg/cosign/keys_test.go at v3.1.2, password `hello`) and
    //! sigstore-rs's (tests/data/keys, src/cosign/signature_layers.rs): keys cosign encrypted,
    //! and a signature `cosign sign --key` made. The public keys were derived from the
    //! decrypted private keys.
    use super::{test_vectors::*, *};

    const COSIGN_LABEL_KEY: &str = "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OCwiciI6
OCwicCI6MX0sInNhbHQiOiJ4WWdoc09JTUxUWGNOT0RsclNIOUNKc1FlOVFnZmN1
cmUrMXlLdHh1TlkwPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiI0cS9PSlVmaXJkSUkrUjZ0ajZBMmcyQ0JqL25xdFNicCJ9LCJj
aXBoZXJ0ZXh0IjoiKzB4Q3NzcFN0WStBczdKanJpOWtsbHBWd2JhcUI4ZWJNdWto
eS9aVE1MSXRsL3B1YS9jWVJvbytLRGxMWWdmOW1kSjk4K1FnQW9oTktoYnJPMTcw
MHdBY1JTMjFDOE4zQUNJRUVZaWpOMllBNnMraGJSbkhjUnd4eGhDMDFtb2FvL0dO
Y1pmbEJheXZMV3pXblo4d2NDZ2ZpT1o1VXlRTEFJMHh0dnR6dEh3cTdDV1Vhd3V4
RlhlNDZzck9TUE9SNHN6bytabWErUGovSFE9PSJ9
-----END ENCRYPTED COSIGN PRIVATE KEY-----";
    const COSIGN_LABEL_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAECYtspttZZ7e9PMd8wyU2CWDlpEXN
bqTve0ZBuOXu9xTjtm7Z107cVLCCk96Ma4D0tesnKeCPwrcspLz7GNZJSw==
-----END PUBLIC KEY-----";
    /// sigstore-rs tests/data/keys/cosign_generated_encrypted_empty_private.key: empty
    /// password, N=65536 (cosign 2.2 and later).
    const EMPTY_PASSWORD_KEY: &str = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjo2NTUzNiwiciI6
OCwicCI6MX0sInNhbHQiOiJFY3pJR3Z0bnpFcCsxaEpudERnbGI1UnoxN3gwQVMy
YklvWGRNcDQrU1NJPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJtSVVKbG1OMzNINExvZ0dhaG5MamdmK3R4SmJwci93MCJ9LCJj
aXBoZXJ0ZXh0IjoiM3FtS2FidXRuYm1WT1IvTkZGM2NDaUErTXp1WWQ5L0VERDVI
MVlUSGhQVzZsSzAvdjVqdDZCQzlsME12NGV5am9qZkl0d3B6a2JJOXQrZGx5VXZ3
VUgvMWZjbkFZT2dEdXRLQzkvSkNiOE02SVY2VHpVaDF5c0ZFWDFzeG9xb1FzeUpL
bjM0UVlldFNlaVdDaGtmUHUyZXByQjFEV0pwekdzTGZIakxNVTkzOEdmNk1xM1A0
N0ZSd2syZzY1cFZnSGMwVWV1L1N1OUs0Zmc9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----";
    const EMPTY_PASSWORD_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEGmsWpZNuu+SUX70n3lVK4JLsaoV7
T+rhea2rQUu29EQiatoLB06QdsmSd+GsQGlQzfcDtsKPzb+B2zLggrWZjg==
-----END PUBLIC KEY-----";
    /// A signature `cosign sign --key` made (sigstore-rs src/cosign/signature_layers.rs).
    const COSIGN_PAYLOAD: &str = r#"{"critical":{"identity":{"docker-reference":"registry-testing.svc.lan/busybox"},"image":{"docker-manifest-digest":"sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b"},"type":"cosign container image signature"},"optional":null}"#;
    const COSIGN_SIGNATURE: &str =
        "MEUCIQD6q/COgzOyW0YH1Dk+CCYSt4uAhm3FDHUwvPI55zwnlwIgE0ZK58ZOWpZw8YVmBapJhBqCfdPekIknimuO0xH8Jh8=";
    const COSIGN_SIGNER_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENptdY/l3nB0yqkXLBWkZWQwo6+cu
OSWS1X9vPavpiQOoTTGC0xX57OojUadxF1cdQmrsiReWg2Wn4FneJfa8xw==
-----END PUBLIC KEY-----";
    const BUSYBOX: &str = "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b";

    fn same_key(secret: &SecretKey, public_pem: &str) -> bool {
        secret.public().to_pem().trim() == TrustedKey::from_pem("k", public_pem).unwrap().to_pem().trim()
    }

    #[test]
    fn keys_cosign_encrypted_decrypt_with_their_password_only() {
        let k = SecretKey::from_cosign_pem(COSIGN_LABEL_KEY, b"hello").unwrap();
        assert!(same_key(&k, COSIGN_LABEL_PUB));
        let k = SecretKey::from_cosign_pem(SIGSTORE_LABEL_KEY, b"hello").unwrap();
        assert!(same_key(&k, SIGSTORE_LABEL_PUB));
        let k = SecretKey::from_cosign_pem(EMPTY_PASSWORD_KEY, b"").unwrap();
        assert!(same_key(&k, EMPTY_PASSWORD_PUB));
        assert_eq!(SecretKey::from_cosign_pem(SIGSTORE_LABEL_KEY, b"wrong").err(), Some(KeyError::WrongPassword));
        assert!(matches!(
            SecretKey::from_cosign_pem(COSIGN_LABEL_PUB, b"hello").err(),
            Some(KeyError::NotCosignKey(_))
        ));
    }

    #[test]
    fn a_signature_cosign_made_verifies_and_the_payload_is_written_as_cosign_writes_it() {
        assert_eq!(payload("registry-testing.svc.lan/busybox", BUSYBOX), COSIGN_PAYLOAD.as_bytes());
        let keys = [TrustedKey::from_pem("team.pub", COSIGN_SIGNER_PUB).unwrap()];
        let layer = SignatureLayer { payload: COSIGN_PAYLOAD.as_bytes().to_vec(), signature: COSIGN_SIGNATURE.into() };
        assert_eq!(verify("busybox", BUSYBOX, std::slice::from_ref(&layer), &keys).unwrap().name, "team.pub");
        // Another artifact's digest: the signature is not for it.
        let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let e = verify("busybox", other, std::slice::from_ref(&layer), &keys).unwrap_err();
        assert!(e.to_string().contains("is for sha256:f3cf"), "{e}");
        // Another key.
        let untrusted = [TrustedKey::from_pem("platform.pub", SIGSTORE_LABEL_PUB).unwrap()];
        let e = verify("busybox", BUSYBOX, std::slice::from_ref(&layer), &untrusted).unwrap_err();
        assert!(e.to_string().contains("by another key") && e.to_string().contains("platform.pub"), "{e}");
        // A payload changed after signing.
        let tampered = SignatureLayer { payload: COSIGN_PAYLOAD.replace("busybox", "busyb0x").into_bytes(), ..layer };
        assert!(verify("busybox", BUSYBOX, &[tampered], &keys).is_err());
    }

    #[test]
    fn keys_written_here_read_back_and_sign_what_verifies() {
        let key = SecretKey::generate();
        let pem = key.to_cosign_pem(b"pw");
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let again = SecretKey::from_cosign_pem(&pem, b"pw").unwrap();
        let trusted = [TrustedKey::from_pem("k.pub", &again.public().to_pem()).unwrap()];
        let payload = payload("127.0.0.1:5000/team/zone", BUSYBOX);
        let layer = SignatureLayer { signature: key.sign(&payload), payload };
        assert!(verify("zone", BUSYBOX, &[layer], &trusted).is_ok());
        assert_eq!(signature_tag(BUSYBOX), format!("sha256-{}.sig", &BUSYBOX[7..]));
    }
}
