//! Simulated ZooKeeper ensembles: the members of a managed ensemble (pods of the `zookeeper`
//! pool), each listening on its pod's IP at 2181, answering the four-letter words and the few
//! session requests the operator sends, with a leader elected among the live members.
//!
//! # Sources
//!
//! Everything modelled was read in ZooKeeper's source at `release-3.9.3` (and `release-3.8.4`,
//! the same) and is recorded with its paths in `host/src/cluster/pinot-facts/zookeeper.md`:
//! - the image: `ZOO_SERVERS` (`server.<id>=<host>:2888:3888;2181`, whitespace-separated) is the
//!   member's configuration, `ZOO_4LW_COMMANDS_WHITELIST` its four-letter words (`srvr` always
//!   allowed, `FourLetterCommands.isEnabled`); others answer `<cmd> is not executed because it is
//!   not in the whitelist.` (`NIOServerCnxn.checkFourLetterWord`);
//! - `ruok` answers `imok` whenever the process runs, quorum or not (`RuokCommand`); `srvr` and
//!   `mntr` answer `This ZooKeeper instance is not currently serving requests` without a quorum
//!   (`StatCommand`, `MonitorCommand`), else `srvr` has `Mode: leader|follower`, `mntr` one
//!   `zk_<key>\t<value>` line per key: `zk_server_state`, `zk_peer_state` (`following -
//!   broadcast` / `leading - broadcast` once synced), `zk_quorum_size` (voters in the member's own
//!   configuration) and, on the leader only, `zk_synced_followers`, `zk_synced_non_voting_followers`,
//!   `zk_learners`;
//! - a follower serves only once it has synced with the leader (`Learner.syncWithLeader` starts
//!   its server at UPTODATE), the leader once a quorum has; a session request to a member that
//!   does not serve closes the connection (`ZooKeeperServer not running`);
//! - quorum: a leader needs a majority of its own configuration; a member follows a leader only
//!   with a majority of its own configuration agreeing (fast leader election), never a leader
//!   outside its own configuration (`FastLeaderElection.lookForLeader` ignores such votes:
//!   "Ignoring notification for non-cluster member sid"), joining an established leader only on a
//!   majority of the others' notifications (`receivedFollowingNotification`: its own vote does
//!   not count; the members of the election follow its winner), and a member outside the leader's
//!   configuration follows as a non-voting follower (`LearnerHandler`, "Follower sid ... not in
//!   the current config");
//! - election: after the leader is lost every member stops serving, and the live member with the
//!   highest (zxid, sid) wins (`FastLeaderElection.totalOrderPredicate`); the simulation keeps
//!   every zxid equal, so the highest id of those that can form a quorum wins. A restarted
//!   follower rejoins the leader there is: no election.
//!
//! Timings are shortened (an election 400 ms, a sync 300 ms) so that the drills run quickly.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

pub const CLIENT_PORT: u16 = 2181;
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";
const ELECTION: Duration = Duration::from_millis(400);
const SYNC: Duration = Duration::from_millis(300);
const VERSION: &str = "3.9.3-c26634f34490bb0ea7a09cc51e05ede3b4e320ee, built on 2024-10-17 23:21 UTC";

/// An ensemble: (namespace, StatefulSet name), which is also its client Service's name.
pub type EnsembleKey = (String, String);

/// What a member's pod says about it when it starts.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    pub pod: String,
    pub uid: String,
    pub ordinal: u32,
    /// `ZOO_SERVERS`.
    pub servers: String,
    /// `ZOO_4LW_COMMANDS_WHITELIST`.
    pub whitelist: String,
    pub zone: Option<String>,
    pub image: String,
}

struct Member {
    spec: MemberSpec,
    id: u32,
    /// The voting members of its configuration: id → pod.
    config: BTreeMap<u32, String>,
    whitelist: BTreeSet<String>,
    addr: SocketAddr,
    /// When it joined the current leader (itself, for the leader).
    joined: Option<Instant>,
    listener: tokio::task::JoinHandle<()>,
}

/// One restart or stop of a member, as the drills check them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberEvent {
    pub pod: String,
    /// `started` or `stopped`.
    pub event: String,
    pub image: String,
    /// The member's mode when it stopped (a leader stopped is an election).
    pub mode: String,
    /// Members of the ensemble, this one aside, that did not serve at that moment.
    pub others_down: Vec<String>,
    pub at_ms: u128,
}

#[derive(Default)]
struct Ensemble {
    members: BTreeMap<u32, Member>,
    leader: Option<u32>,
    leader_since: Option<Instant>,
    /// The members that elected the leader (they follow it without a further vote); a member
    /// that starts later joins it on the others' notifications (`follows`).
    electorate: BTreeSet<u32>,
    election_until: Option<Instant>,
    znodes: BTreeSet<String>,
    zxid: u64,
    events: Vec<MemberEvent>,
    elections: u32,
}

/// The mode and sync state a member reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub pod: String,
    pub id: u32,
    /// `leader`, `follower` or `not serving`.
    pub mode: String,
    pub quorum_size: u32,
    pub addr: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnsembleReport {
    pub leader: Option<String>,
    pub members: Vec<MemberView>,
    pub znodes: Vec<String>,
    pub elections: u32,
    pub events: Vec<MemberEvent>,
}

/// Every simulated ensemble.
#[derive(Default)]
pub struct ZookeeperSim {
    ensembles: Mutex<BTreeMap<EnsembleKey, Ensemble>>,
    /// The zones lost: their members are cut off from the others and from clients.
    lost: Mutex<BTreeSet<String>>,
    epoch: std::sync::OnceLock<Instant>,
}

/// The ids of `ZOO_SERVERS`, with the pod each names (the first label of its host).
fn parse_config(servers: &str) -> BTreeMap<u32, String> {
    servers
        .split_whitespace()
        .filter_map(|s| {
            let (id, host) = s.strip_prefix("server.")?.split_once('=')?;
            Some((id.parse().ok()?, host.split(['.', ':']).next()?.to_string()))
        })
        .collect()
}

impl Ensemble {
    fn live(&self, id: u32, lost: &BTreeSet<String>) -> bool {
        self.members.get(&id).is_some_and(|m| m.spec.zone.as_ref().is_none_or(|z| !lost.contains(z)))
    }

    /// Whether `candidate` can lead: a majority of its configuration live and naming it.
    fn can_lead(&self, candidate: u32, lost: &BTreeSet<String>) -> bool {
        let Some(c) = self.members.get(&candidate) else { return false };
        let supporters = c
            .config
            .keys()
            .filter(|id| self.live(**id, lost) && self.members[*id].config.contains_key(&candidate))
            .count();
        supporters * 2 > c.config.len()
    }

    /// Whether `member` follows the leader: the leader is in its configuration and a majority of
    /// its configuration is live and with the leader.
    fn follows(&self, member: u32, leader: u32, lost: &BTreeSet<String>) -> bool {
        let Some(m) = self.members.get(&member) else { return false };
        if !m.config.contains_key(&leader) {
            return false;
        }
        // Fast leader election joins an established leader on the notifications of the others
        // (LEADING or FOLLOWING it), not on the member's own vote: a majority of its
        // configuration besides itself.
        let agreeing = m
            .config
            .keys()
            .filter(|id| {
                **id != member
                    && self.live(**id, lost)
                    && (**id == leader || self.members[*id].config.contains_key(&leader))
            })
            .count();
        agreeing * 2 > m.config.len()
    }

    fn advance(&mut self, now: Instant, lost: &BTreeSet<String>) {
        if let Some(l) = self.leader
            && !(self.live(l, lost) && self.can_lead(l, lost))
        {
            tracing::debug!(leader = l, "simulated ZooKeeper leader lost");
            self.leader = None;
            self.electorate.clear();
            self.leader_since = None;
            self.election_until = Some(now + ELECTION);
            for m in self.members.values_mut() {
                m.joined = None;
            }
        }
        if self.leader.is_none() && self.election_until.is_none_or(|until| now >= until) {
            let ids: Vec<u32> = self.members.keys().rev().copied().collect();
            if let Some(winner) = ids.into_iter().find(|id| self.live(*id, lost) && self.can_lead(*id, lost)) {
                let winner_config: Vec<u32> = self.members[&winner].config.keys().copied().collect();
                self.electorate = winner_config
                    .into_iter()
                    .filter(|id| self.live(*id, lost) && self.members[id].config.contains_key(&winner))
                    .collect();
                self.leader = Some(winner);
                self.leader_since = Some(now);
                self.election_until = None;
                self.elections += 1;
                self.zxid = ((self.elections as u64) << 32) | (self.zxid & 0xffff_ffff);
                for m in self.members.values_mut() {
                    m.joined = None;
                }
            }
        }
        let Some(leader) = self.leader else { return };
        let followers: Vec<u32> = self.members.keys().copied().collect();
        for id in followers {
            // Once it follows, a member stays with its leader while the leader keeps its quorum;
            // the majority of notifications is asked of it when it joins, not after.
            let following = self.members[&id].joined.is_some();
            let joins = id == leader
                || (self.live(id, lost)
                    && (following || self.electorate.contains(&id) || self.follows(id, leader, lost)));
            let m = self.members.get_mut(&id).expect("member");
            match (joins, m.joined) {
                (true, None) => {
                    tracing::debug!(pod = %m.spec.pod, leader, "simulated ZooKeeper member joins its leader");
                    m.joined = Some(now)
                }
                (false, Some(_)) => {
                    tracing::debug!(pod = %m.spec.pod, leader, "simulated ZooKeeper member leaves its leader");
                    m.joined = None
                }
                _ => {}
            }
        }
    }

    /// Whether a member serves: it has synced with a leader that serves.
    fn serving(&self, id: u32, now: Instant, lost: &BTreeSet<String>) -> bool {
        let Some(leader) = self.leader else { return false };
        let synced = |m: &Member| m.joined.is_some_and(|j| now >= j + SYNC);
        let leader_serves = self.members.get(&leader).is_some_and(|l| {
            synced(l) && {
                let synced_voters =
                    l.config.keys().filter(|v| self.members.get(v).is_some_and(synced) && self.live(**v, lost)).count();
                synced_voters * 2 > l.config.len()
            }
        });
        leader_serves && self.live(id, lost) && self.members.get(&id).is_some_and(synced)
    }

    fn mode(&self, id: u32, now: Instant, lost: &BTreeSet<String>) -> &'static str {
        match (self.serving(id, now, lost), self.leader == Some(id)) {
            (false, _) => "not serving",
            (true, true) => "leader",
            (true, false) => "follower",
        }
    }

    fn answer(&self, id: u32, word: &str, now: Instant, lost: &BTreeSet<String>) -> String {
        let Some(m) = self.members.get(&id) else { return String::new() };
        if word != "srvr" && !m.whitelist.contains(word) {
            return format!("{word} is not executed because it is not in the whitelist.\n");
        }
        let mode = self.mode(id, now, lost);
        match word {
            "ruok" => "imok".to_string(),
            "srvr" | "mntr" if mode == "not serving" => format!("{NOT_SERVING}\n"),
            "srvr" => {
                let mut out = format!(
                    "Zookeeper version: {VERSION}\nLatency min/avg/max: 0/0.0/0\nReceived: 1\nSent: 1\nConnections: 1\nOutstanding: 0\nZxid: 0x{:x}\nMode: {mode}\nNode count: {}\n",
                    self.zxid,
                    self.znodes.len() + 4
                );
                if mode == "leader" {
                    out.push_str("Proposal sizes last/min/max: -1/-1/-1\n");
                }
                out
            }
            "mntr" => {
                let leading = mode == "leader";
                let mut lines = vec![
                    ("version", VERSION.to_string()),
                    ("server_state", mode.to_string()),
                    ("peer_state", format!("{} - broadcast", if leading { "leading" } else { "following" })),
                    ("quorum_size", m.config.len().to_string()),
                    ("znode_count", (self.znodes.len() + 4).to_string()),
                ];
                if leading {
                    let followers: Vec<&Member> =
                        self.members.values().filter(|f| f.id != id && self.serving(f.id, now, lost)).collect();
                    let non_voting = followers.iter().filter(|f| !m.config.contains_key(&f.id)).count();
                    lines.push(("learners", followers.len().to_string()));
                    lines.push(("synced_followers", followers.len().to_string()));
                    lines.push(("synced_non_voting_followers", non_voting.to_string()));
                    lines.push(("synced_observers", "0".into()));
                }
                lines.into_iter().map(|(k, v)| format!("zk_{k}\t{v}\n")).collect()
            }
            // Known words the simulation does not model answer nothing useful.
            _ => String::new(),
        }
    }

    /// The other members of `id`'s configuration that do not serve (stopped ones included).
    fn down_except(&self, id: u32, now: Instant, lost: &BTreeSet<String>) -> Vec<String> {
        let Some(m) = self.members.get(&id) else { return vec![] };
        m.config
            .iter()
            .filter(|(other, _)| **other != id && !self.serving(**other, now, lost))
            .map(|(_, pod)| pod.clone())
            .collect()
    }
}

const FOUR_LETTER_WORDS: &[&str] = &[
    "conf", "cons", "crst", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr", "stat", "wchc", "wchp", "wchs",
    "mntr", "isro", "hash",
];

impl ZookeeperSim {
    fn now_ms(&self) -> u128 {
        self.epoch.get_or_init(Instant::now).elapsed().as_millis()
    }

    pub fn set_zone_lost(&self, zone: &str, lost: bool) {
        let mut zones = self.lost.lock().unwrap_or_else(|e| e.into_inner());
        if lost {
            zones.insert(zone.to_string());
        } else {
            zones.remove(zone);
        }
    }

    /// Time moves on: elections finish, members finish syncing. Called every few
    /// milliseconds by the simulator's ticker (`ticking` for a standalone one).
    pub fn tick(&self) {
        let lost = self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let now = Instant::now();
        for ensemble in self.ensembles.lock().unwrap_or_else(|e| e.into_inner()).values_mut() {
            ensemble.advance(now, &lost);
        }
    }

    /// Ticks every 20 ms while the returned task runs (a simulation without the Pinot simulator).
    pub fn ticking(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let sim = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(20));
            loop {
                every.tick().await;
                sim.tick();
            }
        })
    }

    fn with<R>(&self, key: &EnsembleKey, f: impl FnOnce(&mut Ensemble, Instant, &BTreeSet<String>) -> R) -> R {
        let lost = self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut all = self.ensembles.lock().unwrap_or_else(|e| e.into_inner());
        let ensemble = all.entry(key.clone()).or_default();
        let now = Instant::now();
        ensemble.advance(now, &lost);
        f(ensemble, now, &lost)
    }

    /// The member's process starts: it listens on `ip:2181` and looks for a leader. A member
    /// already running for the same pod uid is left alone.
    pub async fn start_member(self: &Arc<Self>, key: EnsembleKey, ip: &str, spec: MemberSpec) {
        let id = spec.ordinal + 1;
        let running = self.with(&key, |e, _, _| e.members.get(&id).is_some_and(|m| m.spec.uid == spec.uid));
        if running {
            return;
        }
        let addr: SocketAddr = match format!("{ip}:{CLIENT_PORT}").parse() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(ip, error = %e, "a simulated ZooKeeper member needs an IP address");
                return;
            }
        };
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(%addr, error = %e, "simulated ZooKeeper member could not listen");
                return;
            }
        };
        let sim = self.clone();
        let serve_key = key.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (sim, key) = (sim.clone(), serve_key.clone());
                tokio::spawn(async move {
                    let _ = sim.serve(stream, &key, id).await;
                });
            }
        });
        let at_ms = self.now_ms();
        self.with(&key, |e, _, _| {
            if let Some(old) = e.members.remove(&id) {
                old.listener.abort();
                e.electorate.remove(&id);
            }
            e.events.push(MemberEvent {
                pod: spec.pod.clone(),
                event: "started".into(),
                image: spec.image.clone(),
                mode: String::new(),
                others_down: vec![],
                at_ms,
            });
            let member = Member {
                id,
                config: parse_config(&spec.servers),
                whitelist: spec.whitelist.split(',').map(|w| w.trim().to_string()).filter(|w| !w.is_empty()).collect(),
                addr,
                joined: None,
                listener: task,
                spec,
            };
            e.members.insert(id, member);
        });
    }

    /// The member's process is gone (SIGTERM: ZooKeeper stops at once).
    pub fn stop_member(&self, key: &EnsembleKey, uid: &str) {
        let at_ms = self.now_ms();
        self.with(key, |e, now, lost| {
            let Some(id) = e.members.values().find(|m| m.spec.uid == uid).map(|m| m.id) else { return };
            let mode = e.mode(id, now, lost).to_string();
            let others_down = e.down_except(id, now, lost);
            let m = e.members.remove(&id).expect("member");
            m.listener.abort();
            e.electorate.remove(&id);
            e.events.push(MemberEvent {
                pod: m.spec.pod.clone(),
                event: "stopped".into(),
                image: m.spec.image.clone(),
                mode,
                others_down,
                at_ms,
            });
            e.advance(now, lost);
        });
    }

    /// Whether the member of `pod` serves (what its readiness probe, `srvr` showing a mode, says).
    pub fn serving(&self, key: &EnsembleKey, pod: &str) -> bool {
        self.with(key, |e, now, lost| {
            e.members.values().find(|m| m.spec.pod == pod).is_some_and(|m| e.serving(m.id, now, lost))
        })
    }

    /// Whether the ensemble serves and holds `chroot`: what a Pinot process needs to start.
    pub fn serves_chroot(&self, key: &EnsembleKey, chroot: &str) -> bool {
        self.with(key, |e, now, lost| {
            e.leader.is_some_and(|l| e.serving(l, now, lost)) && (chroot.is_empty() || e.znodes.contains(chroot))
        })
    }

    pub fn report(&self, key: &EnsembleKey) -> EnsembleReport {
        self.with(key, |e, now, lost| EnsembleReport {
            leader: e
                .leader
                .filter(|l| e.serving(*l, now, lost))
                .and_then(|l| e.members.get(&l))
                .map(|m| m.spec.pod.clone()),
            members: e
                .members
                .values()
                .map(|m| MemberView {
                    pod: m.spec.pod.clone(),
                    id: m.id,
                    mode: e.mode(m.id, now, lost).into(),
                    quorum_size: m.config.len() as u32,
                    addr: m.addr.to_string(),
                })
                .collect(),
            znodes: e.znodes.iter().cloned().collect(),
            elections: e.elections,
            events: e.events.clone(),
        })
    }

    /// One client connection: a four-letter word, or a session.
    async fn serve(&self, mut stream: TcpStream, key: &EnsembleKey, id: u32) -> std::io::Result<()> {
        // A member in a lost zone is cut off: nothing reaches it.
        if self.with(key, |e, _, lost| !e.live(id, lost)) {
            return Ok(());
        }
        let mut head = [0u8; 4];
        stream.read_exact(&mut head).await?;
        let word = String::from_utf8_lossy(&head).to_string();
        if FOUR_LETTER_WORDS.contains(&word.as_str()) {
            let answer = self.with(key, |e, now, lost| e.answer(id, &word, now, lost));
            stream.write_all(answer.as_bytes()).await?;
            return stream.shutdown().await;
        }
        // A session: the connect request first; a member that does not serve closes.
        let len = i32::from_be_bytes(head);
        if !(0..=1 << 20).contains(&len) {
            return Ok(());
        }
        let mut connect = vec![0u8; len as usize];
        stream.read_exact(&mut connect).await?;
        if !self.with(key, |e, now, lost| e.serving(id, now, lost)) {
            return Ok(());
        }
        let mut response = Vec::new();
        response.extend_from_slice(&0i32.to_be_bytes());
        response.extend_from_slice(&10_000i32.to_be_bytes());
        response.extend_from_slice(&(0x1000_0000_0000_0000i64 | id as i64).to_be_bytes());
        response.extend_from_slice(&16i32.to_be_bytes());
        response.extend_from_slice(&[7u8; 16]);
        response.push(0);
        send(&mut stream, &response).await?;
        loop {
            let mut len = [0u8; 4];
            if stream.read_exact(&mut len).await.is_err() {
                return Ok(());
            }
            let len = i32::from_be_bytes(len);
            if !(8..=1 << 20).contains(&len) {
                return Ok(());
            }
            let mut packet = vec![0u8; len as usize];
            stream.read_exact(&mut packet).await?;
            let xid = i32::from_be_bytes(packet[0..4].try_into().expect("4 bytes"));
            let op = i32::from_be_bytes(packet[4..8].try_into().expect("4 bytes"));
            let path = read_string(&packet[8..]);
            let (err, body): (i32, Vec<u8>) = self.with(key, |e, _, _| match (op, path) {
                // create
                (1, Some(path)) => {
                    let parent = path.rsplit_once('/').map(|(p, _)| if p.is_empty() { "/" } else { p }).unwrap_or("/");
                    if e.znodes.contains(&path) {
                        (-110, vec![])
                    } else if parent != "/" && !e.znodes.contains(parent) {
                        (-101, vec![])
                    } else {
                        e.znodes.insert(path.clone());
                        e.zxid += 1;
                        let mut body = Vec::new();
                        put_string(&mut body, &path);
                        (0, body)
                    }
                }
                // exists
                (3, Some(path)) => match path == "/" || e.znodes.contains(&path) {
                    true => (0, vec![0u8; 68]),
                    false => (-101, vec![]),
                },
                // closeSession
                (-11, _) => (0, vec![]),
                // Unimplemented
                _ => (-6, vec![]),
            });
            let zxid = self.with(key, |e, _, _| e.zxid);
            let mut reply = Vec::new();
            reply.extend_from_slice(&xid.to_be_bytes());
            reply.extend_from_slice(&(zxid as i64).to_be_bytes());
            reply.extend_from_slice(&err.to_be_bytes());
            reply.extend_from_slice(&body);
            send(&mut stream, &reply).await?;
            if op == -11 {
                return Ok(());
            }
        }
    }
}

fn read_string(bytes: &[u8]) -> Option<String> {
    let len = i32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?);
    let text = bytes.get(4..4 + usize::try_from(len).ok()?)?;
    String::from_utf8(text.to_vec()).ok()
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

async fn send(stream: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let mut packet = (payload.len() as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(payload);
    stream.write_all(&packet).await
}
