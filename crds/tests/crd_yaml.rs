//! The committed CRD YAML must be what the Rust types generate: `make crds` regenerates it.

#[test]
fn committed_crd_yaml_matches_the_types() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pinot.controlplane.dev.yaml");
    let committed = std::fs::read_to_string(&path).expect("crds/pinot.controlplane.dev.yaml exists");
    let generated = pinot_crds::crd_yaml();
    assert!(
        committed == generated,
        "{} differs from the CRD the types generate; run `make crds` and commit the result",
        path.display()
    );
    // The kustomize base and the Helm chart carry copies (neither reads outside its directory).
    for copy in ["../deploy/kustomize/base/crds.yaml", "../deploy/helm/pinot-operator/crds/pinot.controlplane.dev.yaml"]
    {
        let copy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(copy);
        let copied = std::fs::read_to_string(&copy).unwrap_or_else(|e| panic!("{}: {e}", copy.display()));
        assert!(copied == generated, "{} is not the generated CRD YAML; run `make crds`", copy.display());
    }
}

#[test]
fn printer_columns_show_readiness_and_age() {
    use kube::CustomResourceExt;
    let crd = pinot_crds::PinotCluster::crd();
    let columns: Vec<String> =
        crd.spec.versions[0].additional_printer_columns.iter().flatten().map(|c| c.name.clone()).collect();
    for expected in ["Available", "Ready", "Age"] {
        assert!(columns.iter().any(|c| c == expected), "{expected} in {columns:?}");
    }
    assert_eq!(crd.spec.names.short_names.as_deref(), Some(&["pinot".to_string()][..]));
    assert!(crd.spec.versions[0].subresources.as_ref().unwrap().status.is_some());
}
