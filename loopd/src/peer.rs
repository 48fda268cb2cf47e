//! Who is on the other end of a loopback connection: the user id that owns the client's socket.
//!
//! Another user of the same machine can reach a loopback port as easily as its owner can. The
//! kernel knows who owns each TCP socket and shows it in `/proc/net/tcp` and `/proc/net/tcp6`:
//! the client's socket is the line whose local address is the connection's peer and whose remote
//! address is our own end. The daemon lets its own user (and root, who could read the data dir's
//! token anyway) in without a token; anyone else needs the token. When the owner cannot be found
//! (no `/proc`, a remote peer), the answer is `None` and the token is required.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The uid that owns the client end of the connection `peer` → `local`, when the kernel shows it.
pub fn owner_uid(peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    if !peer.ip().is_loopback() && !is_mapped_loopback(peer.ip()) {
        return None;
    }
    let table = match peer {
        SocketAddr::V4(_) => "/proc/net/tcp",
        SocketAddr::V6(_) => "/proc/net/tcp6",
    };
    let text = std::fs::read_to_string(table).ok()?;
    find_owner(&text, peer, local)
}

fn is_mapped_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        IpAddr::V4(_) => false,
    }
}

/// The uid column of the line of a `/proc/net/tcp{,6}` table whose local address is `peer` and
/// remote address is `local`.
pub fn find_owner(table: &str, peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    table.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace();
        let _slot = fields.next()?;
        let near = parse_endpoint(fields.next()?)?;
        let far = parse_endpoint(fields.next()?)?;
        if near != peer || far != local {
            return None;
        }
        // st, tx_queue:rx_queue, tr:tm->when, retrnsmt, then uid.
        fields.nth(4)?.parse().ok()
    })
}

/// `0100007F:1F90` (IPv4, the address as the kernel's native-endian word) or 32 hex digits of
/// four such words for IPv6, then the port in hex.
fn parse_endpoint(text: &str) -> Option<SocketAddr> {
    let (address, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match address.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(address)?.to_ne_bytes())),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(&address[i * 8..i * 8 + 8])?.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn word(hex: &str) -> Option<u32> {
    u32::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Read off a little-endian machine: a client on 127.0.0.1:39202 connected to 127.0.0.1:7700,
    // and the daemon's end of the same connection.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1E14 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1568 1 0000 100 0 0 10 0
   1: 0100007F:9922 0100007F:1E14 01 00000000:00000000 00:00000000 00000000  1000        0 2001 1 0000 20 4 30 10 -1
   2: 0100007F:1E14 0100007F:9922 01 00000000:00000000 00:00000000 00000000     0        0 2002 1 0000 20 4 30 10 -1
";

    #[test]
    fn finds_the_owner_of_the_client_end() {
        if cfg!(target_endian = "big") {
            return;
        }
        let client: SocketAddr = "127.0.0.1:39202".parse().unwrap();
        let daemon: SocketAddr = "127.0.0.1:7700".parse().unwrap();
        assert_eq!(find_owner(TCP, client, daemon), Some(1000));
        // The daemon's own end is not the client's.
        assert_eq!(find_owner(TCP, daemon, client), Some(0));
        let stranger: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(find_owner(TCP, stranger, daemon), None);
    }

    #[test]
    fn reads_ipv6_endpoints() {
        if cfg!(target_endian = "big") {
            return;
        }
        let endpoint = parse_endpoint("00000000000000000000000001000000:1E14").unwrap();
        assert_eq!(endpoint, "[::1]:7700".parse().unwrap());
        assert_eq!(parse_endpoint("zz:1"), None);
        assert_eq!(parse_endpoint("0100007F"), None);
    }

    #[test]
    fn a_remote_peer_has_no_known_owner() {
        let remote: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let local: SocketAddr = "10.0.0.1:7700".parse().unwrap();
        assert_eq!(owner_uid(remote, local), None);
    }
}
