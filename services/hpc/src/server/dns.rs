//! The few DNS queries the health checks make: one question (A or SOA) over UDP to one server,
//! the answer's code, its record count and its addresses. Enough to tell whether the Request
//! Router's server answers; the CDN tests ask it with `dig` itself.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// What a server answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The response code (0: no error, 3: no such name, …).
    pub rcode: u8,
    /// Records in the answer section.
    pub answers: u16,
    /// The A records among them.
    pub a: Vec<Ipv4Addr>,
}

const TYPE_A: u16 = 1;
const TYPE_SOA: u16 = 6;

/// The wire form of a query for `name` (A, or SOA with `soa`).
fn encode(id: u16, name: &str, soa: bool) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]); // no flags, one question
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        if label.len() > 63 {
            return Err(format!("\"{label}\" is longer than a DNS label may be"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&(if soa { TYPE_SOA } else { TYPE_A }).to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // class IN
    Ok(q)
}

/// The offset after the (possibly compressed) name at `at`.
fn skip_name(m: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *m.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + l as usize,
        }
    }
}

fn u16_at(m: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*m.get(at)?, *m.get(at + 1)?]))
}

/// Read a response to query `id`.
fn decode(id: u16, m: &[u8]) -> Option<Answer> {
    if u16_at(m, 0)? != id || m.get(2)? & 0x80 == 0 {
        return None;
    }
    let rcode = m.get(3)? & 0x0f;
    let (qd, an) = (u16_at(m, 4)?, u16_at(m, 6)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(m, at)? + 4;
    }
    let mut a = Vec::new();
    for _ in 0..an {
        at = skip_name(m, at)?;
        let (ty, len) = (u16_at(m, at)?, u16_at(m, at + 8)? as usize);
        at += 10;
        let data = m.get(at..at + len)?;
        if ty == TYPE_A && len == 4 {
            a.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += len;
    }
    Some(Answer {
        rcode,
        answers: an,
        a,
    })
}

/// Ask `server` for `name`'s addresses (or its SOA with `soa`).
pub async fn query(server: SocketAddr, name: &str, soa: bool, timeout: Duration) -> Result<Answer, String> {
    let id: u16 = rand::random();
    let q = encode(id, name, soa)?;
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("address")
    } else {
        "[::]:0".parse().expect("address")
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| e.to_string())?;
    sock.connect(server).await.map_err(|e| e.to_string())?;
    sock.send(&q).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Err(_) => return Err("no answer (timed out)".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(n)) => n,
        };
        // Anything that is not the answer to this query is ignored.
        if let Some(a) = decode(id, &buf[..n]) {
            return Ok(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_answers_round_trip() {
        let q = encode(7, "cdn.example.org", false).unwrap();
        assert_eq!(&q[12..16], b"\x03cdn");
        assert!(encode(1, &"a".repeat(64), false).is_err());
        // The query turned into an answer with two A records, the second name compressed.
        let mut r = q.clone();
        r[2] = 0x84;
        r[7] = 2;
        for last in [1u8, 2] {
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 127, 1, 0, last]);
        }
        let a = decode(7, &r).unwrap();
        assert_eq!(a.rcode, 0);
        assert_eq!(
            a.a,
            vec![Ipv4Addr::new(127, 1, 0, 1), Ipv4Addr::new(127, 1, 0, 2)]
        );
        assert_eq!(decode(8, &r), None, "another query's answer");
        assert_eq!(decode(7, &r[..r.len() - 3]), None, "a truncated answer");
        assert_eq!(decode(7, &q), None, "a query is no answer");
    }
}
