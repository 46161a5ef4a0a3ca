//! The operator's event publisher: Kubernetes events (`events.k8s.io/v1`) about the objects it
//! reconciles, in the wire format of kube-runtime's `Recorder`, but with the note in the series
//! key.
//!
//! kube-runtime's `Recorder` counts every event with the same type, action, reason, regarding and
//! related object within six minutes as a repeat of the first one: it patches the first Event
//! with a series count and the later notes are lost, so a scale-in's drain steps all showed as
//! `15x pool controller: replicas 0 -> 1`. Here an event is a repeat only if its note is the same
//! too: a repeat becomes a series on the Event already published (`series.count` and
//! `series.lastObservedTime` patched, as the `Recorder` does), and a different note is a new
//! Event whose note is its own. Every step stays visible, each with its own text.
//!
//! Like the `Recorder`, the publisher remembers the events it published for six minutes (the
//! series cache), in memory and per publisher; the cache is also bounded
//! ([`CACHE_CAPACITY`] entries, the least recently seen going first), so a stream of distinct
//! notes cannot grow it without limit. Forgetting an event only means that its next repeat is
//! published as a new Event.
//!
//! RBAC: `create` and `patch` on `events` in the API group `events.k8s.io`, as for the
//! `Recorder`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use k8s_openapi::{
    api::{
        core::v1::ObjectReference,
        events::v1::{Event as K8sEvent, EventSeries},
    },
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
pub use kube::runtime::events::{Event, EventType};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};

/// The operator's name as the reporting controller of its events.
pub const CONTROLLER: &str = "pinot-operator";

/// The apiserver's limit on an `events.k8s.io` note, in bytes (`NoteLengthLimit` in
/// `pkg/apis/core/validation/events.go`, checked with Go's `len`, i.e. bytes): a longer note
/// makes the apiserver refuse the whole Event.
pub const NOTE_LIMIT: usize = 1024;

/// What ends a note cut to [`NOTE_LIMIT`].
const TRUNCATION_MARK: &str = "...";

/// How long a published event is remembered, so that a repeat becomes a series (the
/// `Recorder`'s TTL).
const CACHE_TTL: SignedDuration = SignedDuration::from_mins(6);

/// How many published events the series cache holds at most.
pub const CACHE_CAPACITY: usize = 4096;

/// Publishes the operator's events; see the [module documentation](self).
///
/// Cheap to clone: clones share the series cache.
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
    cache: Arc<Mutex<SeriesCache>>,
}

impl EventPublisher {
    /// A publisher whose events name `controller` as their reporting controller and, as the
    /// operator's `Recorder`s did (they were given no instance), as their reporting instance.
    #[must_use]
    pub fn new(client: Client, controller: &str) -> Self {
        Self { client, controller: controller.to_string(), instance: controller.to_string(), cache: Arc::default() }
    }

    /// Publishes `event` about `regarding` (`event.secondary` becomes the Event's `related`).
    ///
    /// The same event (type, action, reason, note, regarding and related object) published
    /// again within six minutes patches the Event already published: `series.count` goes up and
    /// `series.lastObservedTime` is now. Anything else creates a new Event, named
    /// `<regarding's name>.<nanoseconds, hex>` like the `Recorder`'s, in the regarding object's
    /// namespace (`default` for a cluster-scoped object). A note longer than [`NOTE_LIMIT`] is
    /// cut at a character boundary and ends with `...`. If the Event to patch is gone (deleted,
    /// or expired by the apiserver), a new one is created.
    ///
    /// # Errors
    ///
    /// The apiserver's error if it refuses the Event or cannot be reached. Events are never
    /// essential to a reconcile: callers log the error (`tracing::warn!`) and carry on. A failed
    /// publish is not remembered, so the next one is not counted as its repeat.
    pub async fn publish(&self, regarding: &ObjectReference, event: &Event) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let note = event.note.as_deref().map(truncate_note);
        let key = SeriesKey {
            type_: event.type_,
            action: event.action.clone(),
            reason: event.reason.clone(),
            note: note.clone(),
            regarding: RefKey::of(regarding),
            related: event.secondary.as_ref().map(RefKey::of),
        };
        let next = {
            let mut cache = self.lock();
            cache.gc(now);
            match cache.events.get(&key) {
                Some(published) => repeat(published, now),
                None => {
                    let nanos = cache.name_nanos(now);
                    self.generate(regarding, event, note.clone(), now, nanos)
                }
            }
        };

        let events: Api<K8sEvent> =
            Api::namespaced(self.client.clone(), regarding.namespace.as_deref().unwrap_or("default"));
        let published = if next.series.is_some() {
            match events.patch(&next.name_any(), &PatchParams::default(), &Patch::Merge(&next)).await {
                Ok(_) => next,
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    let nanos = self.lock().name_nanos(now);
                    let fresh = self.generate(regarding, event, note, now, nanos);
                    events.create(&PostParams::default(), &fresh).await?;
                    fresh
                }
                Err(e) => return Err(e),
            }
        } else {
            events.create(&PostParams::default(), &next).await?;
            next
        };
        self.lock().insert(key, published);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SeriesCache> {
        // The cache holds no invariant a panic could break halfway.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new Event, as the `Recorder` builds it.
    fn generate(
        &self,
        regarding: &ObjectReference,
        event: &Event,
        note: Option<String>,
        now: Timestamp,
        name_nanos: i128,
    ) -> K8sEvent {
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            note,
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!("{}.{name_nanos:x}", regarding.name.as_deref().unwrap_or(&self.controller))),
                ..Default::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            series: None,
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_string(),
            ),
            deprecated_count: None,
            deprecated_first_timestamp: None,
            deprecated_last_timestamp: None,
            deprecated_source: None,
        }
    }
}

/// The published Event with its series advanced by one occurrence, observed `now`.
fn repeat(published: &K8sEvent, now: Timestamp) -> K8sEvent {
    let count = published.series.as_ref().map_or(2, |s| s.count + 1);
    K8sEvent { series: Some(EventSeries { count, last_observed_time: MicroTime(now) }), ..published.clone() }
}

/// `note`, cut to at most [`NOTE_LIMIT`] bytes at a character boundary, ending with `...` if cut.
fn truncate_note(note: &str) -> String {
    if note.len() <= NOTE_LIMIT {
        return note.to_string();
    }
    let end = note.floor_char_boundary(NOTE_LIMIT - TRUNCATION_MARK.len());
    format!("{}{TRUNCATION_MARK}", &note[..end])
}

/// What makes two events the same one: the `Recorder`'s key and the note. (The reporting
/// controller and instance are the publisher's own, the same for all its events.)
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    type_: EventType,
    action: String,
    reason: String,
    note: Option<String>,
    regarding: RefKey,
    related: Option<RefKey>,
}

/// An [`ObjectReference`]'s fields, hashable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct RefKey {
    api_version: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    field_path: Option<String>,
    resource_version: Option<String>,
}

impl RefKey {
    fn of(r: &ObjectReference) -> Self {
        Self {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
            field_path: r.field_path.clone(),
            resource_version: r.resource_version.clone(),
        }
    }
}

/// The events published in the last [`CACHE_TTL`], at most [`CACHE_CAPACITY`] of them.
#[derive(Default)]
struct SeriesCache {
    events: HashMap<SeriesKey, K8sEvent>,
    /// The nanoseconds in the last generated Event name, so that two Events generated in the
    /// same nanosecond (the same object, two notes) still get different names.
    last_name_nanos: i128,
}

impl SeriesCache {
    /// Forgets the events last seen [`CACHE_TTL`] or longer ago.
    fn gc(&mut self, now: Timestamp) {
        self.events.retain(|_, e| last_seen(e).is_none_or(|t| t + CACHE_TTL > now));
    }

    /// The nanoseconds for a new Event's name: now's, or one more than the last if that was not
    /// earlier.
    fn name_nanos(&mut self, now: Timestamp) -> i128 {
        self.last_name_nanos = now.as_nanosecond().max(self.last_name_nanos + 1);
        self.last_name_nanos
    }

    /// Remembers a published event; when full, forgets the one seen longest ago.
    fn insert(&mut self, key: SeriesKey, event: K8sEvent) {
        if self.events.len() >= CACHE_CAPACITY && !self.events.contains_key(&key) {
            let oldest = self.events.iter().min_by_key(|(_, e)| last_seen(e)).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.events.remove(&oldest);
            }
        }
        self.events.insert(key, event);
    }
}

/// When an event was last seen: its series' last observation, or its own time.
fn last_seen(event: &K8sEvent) -> Option<Timestamp> {
    match (&event.series, &event.event_time) {
        (Some(series), _) => Some(series.last_observed_time.0),
        (None, Some(time)) => Some(time.0),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http::header::CONTENT_TYPE;
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;

    /// A request the mock apiserver received.
    #[derive(Clone, Debug)]
    struct Seen {
        method: String,
        path: String,
        content_type: String,
        body: Value,
    }

    type Log = Arc<Mutex<Vec<Seen>>>;

    /// A client whose apiserver answers every request with `respond` (status and body) and logs
    /// it before answering.
    fn mock_apiserver(respond: impl Fn(&Seen) -> (u16, Value) + Send + 'static) -> (Client, Log) {
        let (service, handle) = tower_test::mock::pair::<http::Request<Body>, http::Response<Body>>();
        let log = Log::default();
        let seen_log = log.clone();
        tokio::spawn(async move {
            let mut handle = std::pin::pin!(handle);
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.expect("request body");
                let seen = Seen {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    content_type: parts
                        .headers
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string(),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                let (status, reply) = respond(&seen);
                seen_log.lock().unwrap().push(seen);
                let response = http::Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap();
                send.send_response(response);
            }
        });
        (Client::new(service, "default"), log)
    }

    /// An apiserver that accepts every Event, echoing it back.
    fn accepting_apiserver() -> (Client, Log) {
        mock_apiserver(|seen| (if seen.method == "POST" { 201 } else { 200 }, seen.body.clone()))
    }

    fn seen(log: &Log) -> Vec<Seen> {
        log.lock().unwrap().clone()
    }

    fn cluster_ref() -> ObjectReference {
        ObjectReference {
            api_version: Some("pinot.controlplane.dev/v1alpha1".into()),
            kind: Some("PinotCluster".into()),
            name: Some("demo".into()),
            namespace: Some("pinot".into()),
            uid: Some("0c4f2a8e-1111-2222-3333-444455556666".into()),
            ..Default::default()
        }
    }

    fn event(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Scale".into(),
            secondary: None,
        }
    }

    const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/pinot/events";

    #[tokio::test]
    async fn different_notes_with_the_same_reason_are_separate_events() {
        let (client, log) = accepting_apiserver();
        let publisher = EventPublisher::new(client, CONTROLLER);
        let regarding = cluster_ref();
        publisher.publish(&regarding, &event("Scaled", "pool controller: replicas 0 -> 1")).await.unwrap();
        publisher.publish(&regarding, &event("Scaled", "pool server: draining server-2")).await.unwrap();

        let seen = seen(&log);
        assert_eq!(seen.len(), 2, "{seen:#?}");
        for (request, note) in seen.iter().zip(["pool controller: replicas 0 -> 1", "pool server: draining server-2"]) {
            assert_eq!(request.method, "POST");
            assert_eq!(request.path, EVENTS_PATH);
            let body = &request.body;
            assert_eq!(body["apiVersion"], "events.k8s.io/v1");
            assert_eq!(body["kind"], "Event");
            assert_eq!(body["note"], note);
            assert_eq!(body["reason"], "Scaled");
            assert_eq!(body["action"], "Scale");
            assert_eq!(body["type"], "Normal");
            assert_eq!(body["reportingController"], "pinot-operator");
            assert_eq!(body["reportingInstance"], "pinot-operator");
            assert_eq!(body["regarding"], serde_json::to_value(&regarding).unwrap());
            assert_eq!(body["metadata"]["namespace"], "pinot");
            assert!(body["metadata"]["name"].as_str().unwrap().starts_with("demo."), "{body}");
            assert!(body["eventTime"].is_string(), "{body}");
            assert!(body.get("series").is_none(), "{body}");
            assert!(body.get("related").is_none(), "{body}");
        }
        assert_ne!(seen[0].body["metadata"]["name"], seen[1].body["metadata"]["name"]);
    }

    #[tokio::test]
    async fn the_same_note_twice_is_one_event_with_a_series() {
        let (client, log) = accepting_apiserver();
        let publisher = EventPublisher::new(client, CONTROLLER);
        let regarding = cluster_ref();
        let halted = Event { type_: EventType::Warning, ..event("UpgradeHalted", "server-1: segments in ERROR") };
        publisher.publish(&regarding, &halted).await.unwrap();
        publisher.publish(&regarding, &halted).await.unwrap();
        publisher.publish(&regarding, &halted).await.unwrap();

        let seen = seen(&log);
        assert_eq!(seen.iter().map(|s| s.method.as_str()).collect::<Vec<_>>(), ["POST", "PATCH", "PATCH"]);
        let name = seen[0].body["metadata"]["name"].as_str().unwrap();
        for (patch, count) in seen[1..].iter().zip([2, 3]) {
            assert_eq!(patch.path, format!("{EVENTS_PATH}/{name}"));
            assert_eq!(patch.content_type, "application/merge-patch+json");
            assert_eq!(patch.body["series"]["count"], count);
            assert!(patch.body["series"]["lastObservedTime"].is_string(), "{}", patch.body);
            // The patch carries the published Event, whose note and time the apiserver keeps.
            assert_eq!(patch.body["note"], "server-1: segments in ERROR");
            assert_eq!(patch.body["type"], "Warning");
            assert_eq!(patch.body["eventTime"], seen[0].body["eventTime"]);
        }
    }

    #[tokio::test]
    async fn a_note_repeated_after_another_continues_its_own_series() {
        let (client, log) = accepting_apiserver();
        let publisher = EventPublisher::new(client, CONTROLLER);
        let regarding = cluster_ref();
        publisher.publish(&regarding, &event("Scaled", "step one")).await.unwrap();
        publisher.publish(&regarding, &event("Scaled", "step two")).await.unwrap();
        publisher.publish(&regarding, &event("Scaled", "step one")).await.unwrap();

        let seen = seen(&log);
        assert_eq!(seen.iter().map(|s| s.method.as_str()).collect::<Vec<_>>(), ["POST", "POST", "PATCH"]);
        let first = seen[0].body["metadata"]["name"].as_str().unwrap();
        assert_eq!(seen[2].path, format!("{EVENTS_PATH}/{first}"));
        assert_eq!(seen[2].body["note"], "step one");
        assert_eq!(seen[2].body["series"]["count"], 2);
    }

    #[tokio::test]
    async fn a_different_related_object_is_a_separate_event() {
        let (client, log) = accepting_apiserver();
        let publisher = EventPublisher::new(client, CONTROLLER);
        let regarding = cluster_ref();
        let related = |name: &str| ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("StatefulSet".into()),
            name: Some(name.into()),
            namespace: Some("pinot".into()),
            ..Default::default()
        };
        for name in ["demo-server", "demo-broker"] {
            let created = Event { secondary: Some(related(name)), ..event("Created", "created") };
            publisher.publish(&regarding, &created).await.unwrap();
        }

        let seen = seen(&log);
        assert_eq!(seen.iter().map(|s| s.method.as_str()).collect::<Vec<_>>(), ["POST", "POST"]);
        assert_eq!(seen[0].body["related"]["name"], "demo-server");
        assert_eq!(seen[1].body["related"]["name"], "demo-broker");
    }

    #[tokio::test]
    async fn a_long_note_is_cut_to_the_apiserver_limit() {
        let (client, log) = accepting_apiserver();
        let publisher = EventPublisher::new(client, CONTROLLER);
        // Two-byte characters, so that the limit falls inside one unless cut at a boundary.
        let long = "é".repeat(NOTE_LIMIT);
        publisher.publish(&cluster_ref(), &event("ApplyFailed", &long)).await.unwrap();

        let seen = seen(&log);
        let note = seen[0].body["note"].as_str().unwrap();
        assert!(note.len() <= NOTE_LIMIT, "{} bytes", note.len());
        assert!(note.len() > NOTE_LIMIT - 8, "{} bytes", note.len());
        assert!(note.ends_with("..."));
        assert!(long.starts_with(note.trim_end_matches("...")));

        // A note at the limit is left alone.
        let exact = "x".repeat(NOTE_LIMIT);
        assert_eq!(truncate_note(&exact), exact);
        assert_eq!(truncate_note("short"), "short");
    }

    #[tokio::test]
    async fn a_cluster_scoped_object_has_its_events_in_default() {
        let (client, log) = accepting_apiserver();
        let publisher = EventPublisher::new(client, CONTROLLER);
        let node = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some("node-1".into()),
            ..Default::default()
        };
        publisher.publish(&node, &event("Seen", "node")).await.unwrap();

        let seen = seen(&log);
        assert_eq!(seen[0].path, "/apis/events.k8s.io/v1/namespaces/default/events");
        assert!(seen[0].body["metadata"].get("namespace").is_none(), "{}", seen[0].body);
    }

    #[tokio::test]
    async fn a_repeat_after_the_ttl_is_a_new_event() {
        let (client, log) = accepting_apiserver();
        let publisher = EventPublisher::new(client, CONTROLLER);
        let regarding = cluster_ref();
        publisher.publish(&regarding, &event("Scaled", "step")).await.unwrap();
        let past = Timestamp::now() - SignedDuration::from_mins(7);
        for e in publisher.lock().events.values_mut() {
            e.event_time = Some(MicroTime(past));
        }
        publisher.publish(&regarding, &event("Scaled", "step")).await.unwrap();

        let seen = seen(&log);
        assert_eq!(seen.iter().map(|s| s.method.as_str()).collect::<Vec<_>>(), ["POST", "POST"]);
        assert_eq!(publisher.lock().events.len(), 1);
    }

    #[tokio::test]
    async fn a_deleted_event_is_created_again() {
        let (client, log) = mock_apiserver(|seen| match seen.method.as_str() {
            "PATCH" => (
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "events not found",
                       "reason": "NotFound", "code": 404}),
            ),
            _ => (201, seen.body.clone()),
        });
        let publisher = EventPublisher::new(client, CONTROLLER);
        let regarding = cluster_ref();
        publisher.publish(&regarding, &event("Scaled", "step")).await.unwrap();
        publisher.publish(&regarding, &event("Scaled", "step")).await.unwrap();

        let seen = seen(&log);
        assert_eq!(seen.iter().map(|s| s.method.as_str()).collect::<Vec<_>>(), ["POST", "PATCH", "POST"]);
        assert_eq!(seen[2].body["note"], "step");
        assert!(seen[2].body.get("series").is_none(), "{}", seen[2].body);
        assert_ne!(seen[2].body["metadata"]["name"], seen[0].body["metadata"]["name"]);
    }

    #[tokio::test]
    async fn a_refused_event_is_an_error_and_not_remembered() {
        let (client, log) = mock_apiserver(|_| {
            (
                422,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "invalid",
                       "reason": "Invalid", "code": 422}),
            )
        });
        let publisher = EventPublisher::new(client, CONTROLLER);
        let regarding = cluster_ref();
        assert!(publisher.publish(&regarding, &event("Scaled", "step")).await.is_err());
        assert!(publisher.publish(&regarding, &event("Scaled", "step")).await.is_err());

        let seen = seen(&log);
        assert_eq!(seen.iter().map(|s| s.method.as_str()).collect::<Vec<_>>(), ["POST", "POST"]);
        assert!(publisher.lock().events.is_empty());
    }

    #[test]
    fn the_series_cache_is_bounded_and_forgets_the_oldest_first() {
        let mut cache = SeriesCache::default();
        let start = Timestamp::now();
        let key = |i: usize| SeriesKey {
            type_: EventType::Normal,
            action: "Scale".into(),
            reason: "Scaled".into(),
            note: Some(format!("step {i}")),
            regarding: RefKey::of(&cluster_ref()),
            related: None,
        };
        for i in 0..=CACHE_CAPACITY {
            let seen_at = start + SignedDuration::from_millis(i64::try_from(i).unwrap());
            cache.insert(key(i), K8sEvent { event_time: Some(MicroTime(seen_at)), ..Default::default() });
        }
        assert_eq!(cache.events.len(), CACHE_CAPACITY);
        assert!(!cache.events.contains_key(&key(0)));
        assert!(cache.events.contains_key(&key(1)));
        assert!(cache.events.contains_key(&key(CACHE_CAPACITY)));
    }

    #[test]
    fn event_names_are_unique_within_a_nanosecond() {
        let mut cache = SeriesCache::default();
        let now = Timestamp::now();
        let first = cache.name_nanos(now);
        let second = cache.name_nanos(now);
        assert_eq!(first, now.as_nanosecond());
        assert_eq!(second, first + 1);
    }
}
