//! Who is on the other end of a loopback connection: the user id that owns the client's socket.
//!
//! Another user of the same machine can reach a loopback port as easily as its owner can. The
//! kernel knows who owns each TCP socket and shows it in `/proc/net/tcp` and `/proc/net/tcp6`:
//! the client's socket is the line whose local address is the connection's peer and whose remote
//! address is our own end. The daemon lets its own user (and root, who could read the data dir's
//! token anyway) in without a token; anyone else needs the token. When the owner cannot be found
//! (no `/proc`, a remote peer), the answer is `None` and the token is required.
//!
//! The kernel is asked for that one socket first (`NETLINK_SOCK_DIAG`, what `ss` uses): the
//! tables list every TCP socket of the machine, closed ones in `TIME_WAIT` included, so reading
//! them for each new connection costs a burst of N clients N × (all sockets) — seconds of CPU
//! for a few hundred clients. The tables are the fallback where netlink is not offered.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The uid that owns the client end of the connection `peer` → `local`, when the kernel shows it.
pub fn owner_uid(peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    if !peer.ip().is_loopback() && !is_mapped_loopback(peer.ip()) {
        return None;
    }
    match ask_kernel(peer, local) {
        Ok(found) => found,
        Err(_) => owner_from_table(peer, local),
    }
}

/// The owner as `/proc/net/tcp{,6}` shows it.
fn owner_from_table(peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    let table = match peer {
        SocketAddr::V4(_) => "/proc/net/tcp",
        SocketAddr::V6(_) => "/proc/net/tcp6",
    };
    let text = std::fs::read_to_string(table).ok()?;
    find_owner(&text, peer, local)
}

/// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLMSG_ERROR` (linux/netlink.h).
const NLMSG_ERROR: u16 = 2;
/// The bytes of a `struct nlmsghdr`.
const NLMSG_HEADER: usize = 16;
/// The bytes of a `struct inet_diag_sockid`: ports, two 16-byte addresses, interface, cookie.
const SOCKID: usize = 48;
/// Where `idiag_uid` is in a `struct inet_diag_msg`: family, state, timer, retrans, the socket
/// id, then expires, rqueue and wqueue.
const UID_AT: usize = 4 + SOCKID + 12;

/// The owner of the client's socket, asked of the kernel for that socket alone: `Ok(None)` when
/// the kernel answers that there is none, `Err` when it cannot be asked (no netlink here).
fn ask_kernel(peer: SocketAddr, local: SocketAddr) -> std::io::Result<Option<u32>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::DGRAM,
        Some(Protocol::from(libc::NETLINK_SOCK_DIAG)),
    )?;
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    let id = sockid(peer, local);
    let family = match peer {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // A `struct nlmsghdr` and a `struct inet_diag_req_v2` naming one socket (no dump).
    let mut request = Vec::with_capacity(NLMSG_HEADER + 8 + SOCKID);
    let length = (NLMSG_HEADER + 8 + SOCKID) as u32;
    request.extend_from_slice(&length.to_ne_bytes());
    request.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    request.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes());
    request.extend_from_slice(&0u32.to_ne_bytes());
    request.extend_from_slice(&[family as u8, libc::IPPROTO_TCP as u8, 0, 0]);
    request.extend_from_slice(&u32::MAX.to_ne_bytes());
    request.extend_from_slice(&id);
    socket.send(&request)?;
    let mut answer = [0u8; 1024];
    let n = (&socket).read(&mut answer)?;
    let answer = &answer[..n];
    let kind = answer
        .get(4..6)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        .ok_or_else(|| std::io::Error::other("a short netlink answer"))?;
    let body = &answer[NLMSG_HEADER.min(n)..];
    if kind == NLMSG_ERROR {
        let errno = body
            .get(..4)
            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        // No such socket (the client is already gone): nobody to let in.
        if errno == -libc::ENOENT {
            return Ok(None);
        }
        return Err(std::io::Error::from_raw_os_error(-errno));
    }
    if kind != SOCK_DIAG_BY_FAMILY || body.len() < UID_AT + 4 {
        return Err(std::io::Error::other("an unexpected netlink answer"));
    }
    // The socket answered must be the one asked about (ports and addresses; not the cookie).
    if body[4..4 + 36] != id[..36] {
        return Err(std::io::Error::other(
            "netlink answered about another socket",
        ));
    }
    let uid = &body[UID_AT..UID_AT + 4];
    Ok(Some(u32::from_ne_bytes([uid[0], uid[1], uid[2], uid[3]])))
}

/// The `struct inet_diag_sockid` of the client's socket: its own end is `peer`, its far end
/// `local`; ports and addresses in network order, any interface, no cookie.
fn sockid(peer: SocketAddr, local: SocketAddr) -> [u8; SOCKID] {
    let mut id = [0u8; SOCKID];
    id[0..2].copy_from_slice(&peer.port().to_be_bytes());
    id[2..4].copy_from_slice(&local.port().to_be_bytes());
    for (at, ip) in [(4, peer.ip()), (20, local.ip())] {
        match ip {
            IpAddr::V4(v4) => id[at..at + 4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => id[at..at + 16].copy_from_slice(&v6.octets()),
        }
    }
    id[40..48].copy_from_slice(&[0xff; 8]);
    id
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

    /// The kernel's answer for a real loopback connection is the table's, and ours.
    #[test]
    fn the_kernel_names_the_owner_of_a_real_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        let local = listener.local_addr().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let me = nix::unistd::geteuid().as_raw();
        match ask_kernel(peer, local) {
            Ok(found) => assert_eq!(found, Some(me)),
            // No netlink here (a sandbox): the table still answers.
            Err(error) => eprintln!("no NETLINK_SOCK_DIAG here: {error}"),
        }
        assert_eq!(owner_from_table(peer, local), Some(me));
        assert_eq!(owner_uid(peer, local), Some(me));
        // A socket that does not exist has no owner.
        let gone: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(owner_uid(gone, local), None);
    }

    #[test]
    fn a_remote_peer_has_no_known_owner() {
        let remote: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let local: SocketAddr = "10.0.0.1:7700".parse().unwrap();
        assert_eq!(owner_uid(remote, local), None);
    }
}
