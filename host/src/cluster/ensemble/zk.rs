//! The little of ZooKeeper's client port the operator speaks: four-letter words (`srvr`,
//! `mntr`: a command in place of a packet length, answered with text, then the connection
//! closes), and a session just long enough to ask whether a znode exists and create it (the
//! chroot Pinot's connect string names, which neither Pinot nor Helix creates).
//!
//! Wire format, read from ZooKeeper's `zookeeper-jute/src/main/resources/zookeeper.jute` and
//! `ZooDefs.java` at `release-3.9.3` (the same at `release-3.8.4`): every packet is a 4-byte
//! big-endian length and a Jute record (int: 4 bytes, long: 8, boolean: 1, ustring and buffer:
//! an int length then the bytes, vector: an int count then the items). A session starts with a
//! `ConnectRequest {int protocolVersion; long lastZxidSeen; int timeOut; long sessionId; buffer
//! passwd; boolean readOnly}` without header; every request after it is a `RequestHeader {int
//! xid; int type}` and its record; every reply a `ReplyHeader {int xid; long zxid; int err}` and,
//! when `err` is 0, its record. Op codes: create 1, exists 3, closeSession -11. Errors: NoNode
//! -101, NodeExists -110. `OPEN_ACL_UNSAFE` is one ACL `{perms: ALL = 31, id: {world, anyone}}`;
//! flags 0 is a persistent znode.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const OP_CREATE: i32 = 1;
const OP_EXISTS: i32 = 3;
const OP_CLOSE_SESSION: i32 = -11;
const ERR_NO_NODE: i32 = -101;
const ERR_NODE_EXISTS: i32 = -110;
const PERMS_ALL: i32 = 31;
/// The session timeout asked for; the server clamps it to its own bounds (2 to 20 ticks).
const SESSION_TIMEOUT_MS: i32 = 10_000;
/// The longest answer read (a `mntr` is a few KiB).
const MAX_ANSWER: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ZkError {
    #[error("{addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("{addr}: no answer within {0:?}", .timeout)]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr}: {message}")]
    Protocol { addr: String, message: String },
}

/// Sends a four-letter word and returns the whole answer.
pub async fn four_letter_word(addr: &str, word: &str, timeout: Duration) -> Result<String, ZkError> {
    let work = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(word.as_bytes()).await?;
        let mut answer = Vec::new();
        (&mut stream).take(MAX_ANSWER as u64).read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result.map_err(|source| ZkError::Io { addr: addr.to_string(), source }),
        Err(_) => Err(ZkError::Timeout { addr: addr.to_string(), timeout }),
    }
}

/// Whether the znode `path` exists.
pub async fn exists(addr: &str, path: &str, timeout: Duration) -> Result<bool, ZkError> {
    with_session(addr, timeout, |xid| {
        let mut body = Vec::new();
        put_string(&mut body, path);
        body.push(0); // no watch
        (xid, OP_EXISTS, body)
    })
    .await
    .and_then(|err| match err {
        0 => Ok(true),
        ERR_NO_NODE => Ok(false),
        other => Err(ZkError::Protocol { addr: addr.to_string(), message: format!("exists {path}: error {other}") }),
    })
}

/// Creates the persistent znode `path` (its parent must exist) open to every client, as Helix
/// creates Pinot's. `true` when it was created, `false` when it existed already.
pub async fn create(addr: &str, path: &str, timeout: Duration) -> Result<bool, ZkError> {
    with_session(addr, timeout, |xid| {
        let mut body = Vec::new();
        put_string(&mut body, path);
        body.extend_from_slice(&0i32.to_be_bytes()); // empty data
        body.extend_from_slice(&1i32.to_be_bytes()); // one ACL
        body.extend_from_slice(&PERMS_ALL.to_be_bytes());
        put_string(&mut body, "world");
        put_string(&mut body, "anyone");
        body.extend_from_slice(&0i32.to_be_bytes()); // persistent
        (xid, OP_CREATE, body)
    })
    .await
    .and_then(|err| match err {
        0 => Ok(true),
        ERR_NODE_EXISTS => Ok(false),
        other => Err(ZkError::Protocol { addr: addr.to_string(), message: format!("create {path}: error {other}") }),
    })
}

/// Opens a session, sends one request, reads its reply header's error code, closes the session.
async fn with_session(
    addr: &str,
    timeout: Duration,
    request: impl FnOnce(i32) -> (i32, i32, Vec<u8>),
) -> Result<i32, ZkError> {
    let protocol = |message: String| ZkError::Protocol { addr: addr.to_string(), message };
    let work = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|source| ZkError::Io { addr: addr.into(), source })?;
        let io = |source| ZkError::Io { addr: addr.to_string(), source };
        let mut connect = Vec::new();
        connect.extend_from_slice(&0i32.to_be_bytes()); // protocolVersion
        connect.extend_from_slice(&0i64.to_be_bytes()); // lastZxidSeen
        connect.extend_from_slice(&SESSION_TIMEOUT_MS.to_be_bytes());
        connect.extend_from_slice(&0i64.to_be_bytes()); // sessionId: a new session
        connect.extend_from_slice(&16i32.to_be_bytes()); // passwd: 16 zero bytes
        connect.extend_from_slice(&[0u8; 16]);
        connect.push(0); // readOnly: false
        send(&mut stream, &connect).await.map_err(io)?;
        // A member without a quorum closes the connection instead of answering.
        let answer = receive(&mut stream).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => protocol("closed the session at connect: not serving".into()),
            _ => io(e),
        })?;
        if answer.len() < 16 || i64::from_be_bytes(answer[8..16].try_into().expect("8 bytes")) == 0 {
            return Err(protocol("refused the session".into()));
        }
        let (xid, op, body) = request(1);
        let mut packet = Vec::new();
        packet.extend_from_slice(&xid.to_be_bytes());
        packet.extend_from_slice(&op.to_be_bytes());
        packet.extend_from_slice(&body);
        send(&mut stream, &packet).await.map_err(io)?;
        let reply = receive(&mut stream).await.map_err(io)?;
        if reply.len() < 16 {
            return Err(protocol(format!("a reply of {} bytes", reply.len())));
        }
        let err = i32::from_be_bytes(reply[12..16].try_into().expect("4 bytes"));
        let mut close = Vec::new();
        close.extend_from_slice(&2i32.to_be_bytes());
        close.extend_from_slice(&OP_CLOSE_SESSION.to_be_bytes());
        // The session ends with the connection anyway: a failed close changes nothing.
        let _ = send(&mut stream, &close).await;
        Ok(err)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(ZkError::Timeout { addr: addr.to_string(), timeout }),
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

async fn send(stream: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let mut packet = Vec::with_capacity(payload.len() + 4);
    packet.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    packet.extend_from_slice(payload);
    stream.write_all(&packet).await
}

async fn receive(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = i32::from_be_bytes(len);
    if !(0..=MAX_ANSWER as i32).contains(&len) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a packet of {len} bytes")));
    }
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload).await?;
    Ok(payload)
}
